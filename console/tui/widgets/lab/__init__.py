"""The lab sidebar of the console: the engine's side in the machine thread (driver.py), what
the sidebar knows in the UI thread (model.py), and the widget that draws it (sidebar.py)."""
