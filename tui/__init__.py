"""The Textual dashboard (trackops tui): a front-end over trackops.core.engine."""
