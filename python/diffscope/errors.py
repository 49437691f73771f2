"""The package's exception."""


class Error(Exception):
    """A failure reported by libdiffscope or a reader: a bad model folder, tokenizer or file, a
    token id outside the vocabulary, an intervention out of range, ... The message is one line
    that names the file and the problem, as the command line prints it."""


Error.__module__ = "diffscope"  # tracebacks print diffscope.Error, the name users catch
