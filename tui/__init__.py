"""The Textual dashboard (trackops tui, trackops demo): a front-end over trackops.core.service."""
