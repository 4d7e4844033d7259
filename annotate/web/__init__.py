"""The studio's Gradio app: the layout and its events, the stroke editor's canvas and shortcuts, the
Quality tab, the named API endpoints, and the Gradio start-up and server-log adjustments."""
