"""The generation engine: tokens in, tokens out. No Qt below this package (see DESIGN.md)."""
