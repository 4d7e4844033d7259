"""Images in and out: decoding and checks, fast PNG writing, foreground colour estimation, and the
classical matte used when no weights are available."""
