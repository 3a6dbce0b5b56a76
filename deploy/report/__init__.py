"""The report: data and JSON codec (model), renderers that depend on it (markdown, chart), files, index."""
