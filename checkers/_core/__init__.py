"""The exercise framework behind ``checkers``: model, text, registry, contexts and runner."""
