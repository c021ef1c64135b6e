# Figures and the compact tables of the HTML report:
#   snakemake --report results/report.html
# Outputs flagged with report() are embedded in that file with the caption next to them; the
# landing page (workflow/report/workflow.rst) shows the tables and, through gallery.html (the
# figures inlined as data URIs), every figure at once.

FIGURE_CAPTIONS = {
    "qualitative": ("qualitative.rst", "qualitative crops"),
    "psnr-bar": ("psnr_bar.rst", "PSNR per method"),
    "psnr-time": ("psnr_time.rst", "PSNR versus time"),
    "loss": ("loss.rst", "loss curves"),
    "flow": ("flow.rst", "optical flow"),
}


for _kind, (_caption, _label) in FIGURE_CAPTIONS.items():

    rule:
        name:
            f"figure_{_kind.replace('-', '_')}"
        input:
            unpack(stage_inputs(f"figure_{_kind.replace('-', '_')}")),
        output:
            reported(f"figure_{_kind.replace('-', '_')}", "Figures", _caption, {"figure": _label}),
        params:
            values=stage_params(f"figure_{_kind.replace('-', '_')}"),
            command=PIPELINE.stage(f"figure_{_kind.replace('-', '_')}").cmd,
        log:
            PIPELINE.log(f"figure_{_kind.replace('-', '_')}"),
        shell:
            LOOP_SHELL


rule report_gallery:
    input:
        unpack(stage_inputs("report_gallery")),
    output:
        **stage_outputs("report_gallery"),
    log:
        PIPELINE.log("report_gallery"),
    shell:
        stage_shell("report_gallery")


for _table in asled_config.TABLE_FILES:

    rule:
        name:
            f"report_table_{_table}"
        input:
            unpack(stage_inputs(f"report_table_{_table}")),
        output:
            reported(f"report_table_{_table}", "Tables", "table.rst", {"table": _table}),
        params:
            command=PIPELINE.stage(f"report_table_{_table}").cmd,
            # for the caption only (workflow/report/table.rst); the stage reads no params key
            table=_table,
        log:
            PIPELINE.log(f"report_table_{_table}"),
        shell:
            LOOP_SHELL
