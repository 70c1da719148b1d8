"""Click commands, one module each; `privaudit.cli` attaches every module's `command`."""
