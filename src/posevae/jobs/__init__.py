"""Jobs that chain training, evaluation and the report: `posevae demo` and `posevae compare`."""
