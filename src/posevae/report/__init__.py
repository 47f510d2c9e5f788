"""The report: figures, tables, the HTML page and the person crops, drawn from run folders."""
