"""Pages: the status page and the run page, the receiver's two HTML views."""
