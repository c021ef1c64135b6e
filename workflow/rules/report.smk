# Figures and the compact tables of the HTML report:
#   snakemake --report results/report.html
# Outputs flagged with report() are embedded in that file with the caption next to them; the
# landing page (workflow/report/workflow.rst) shows the tables and, through gallery.html (the
# figures inlined as data URIs), every figure at once.

FIGURES = asled_config.FIGURE_OUTPUTS
FIRST_SEED = SEEDS[0]
TABLE1_CSV = asled_config.TABLE_OUTPUTS["table1"] + ".csv"


rule figure_qualitative:
    input:
        test=prepared("test"),
        restored=expand(str(PATHS.restored("{method}", FIRST_SEED)), method=METHODS),
    output:
        report(FIGURES["qualitative"], caption="../report/qualitative.rst", category="Figures",
               labels={"figure": "qualitative crops"}),
    log:
        "logs/figures/qualitative.log",
    shell:
        "asled figures qualitative > {log} 2>&1"


rule figure_psnr_bar:
    input:
        TABLE1_CSV,
    output:
        report(FIGURES["psnr-bar"], caption="../report/psnr_bar.rst", category="Figures",
               labels={"figure": "PSNR per method"}),
    log:
        "logs/figures/psnr_bar.log",
    shell:
        "asled figures psnr-bar > {log} 2>&1"


rule figure_psnr_time:
    input:
        TABLE1_CSV,
    output:
        report(FIGURES["psnr-time"], caption="../report/psnr_time.rst", category="Figures",
               labels={"figure": "PSNR versus time"}),
    log:
        "logs/figures/psnr_time.log",
    shell:
        "asled figures psnr-time > {log} 2>&1"


rule figure_loss:
    input:
        expand(str(PATHS.train_log("{method}", "{seed}")), method=TRAINED_METHODS, seed=SEEDS),
    output:
        report(FIGURES["loss"], caption="../report/loss.rst", category="Figures",
               labels={"figure": "loss curves"}),
    log:
        "logs/figures/loss.log",
    shell:
        "asled figures loss > {log} 2>&1"


rule figure_flow:
    input:
        prepared("test"),
    output:
        report(FIGURES["flow"], caption="../report/flow.rst", category="Figures",
               labels={"figure": "optical flow"}),
    log:
        "logs/figures/flow.log",
    shell:
        "asled figures flow > {log} 2>&1"


rule report_gallery:
    input:
        list(FIGURES.values()),
    output:
        asled_config.REPORT_GALLERY,
    log:
        "logs/figures/gallery.log",
    shell:
        "asled figures gallery > {log} 2>&1"


for _table, _report_csv in asled_config.REPORT_TABLES.items():

    rule:
        name:
            f"report_table_{_table}"
        input:
            asled_config.TABLE_OUTPUTS[_table] + ".csv",
        output:
            report(_report_csv, caption="../report/table.rst", category="Tables", labels={"table": _table}),
        params:
            # read through params: the shell string is formatted after the loop has moved on
            table=_table,
        log:
            f"logs/figures/table_{_table}.log",
        shell:
            "asled figures table {params.table} > {log} 2>&1"
