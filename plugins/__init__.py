"""Built-in plugins, loaded through the trackops entry-point group like third-party ones."""
