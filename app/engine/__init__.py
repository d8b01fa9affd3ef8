"""The generation engine: tokens in, tokens out. No Qt below this package (docs/architecture.md)."""
