"""trackops.core: the engine. It knows nothing of Textual or Slack."""
