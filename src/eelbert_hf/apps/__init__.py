"""The applications on top: the `eelbert` command line, the quickstart, `classify` and the training commands' flags. They parse arguments and call the library below."""
