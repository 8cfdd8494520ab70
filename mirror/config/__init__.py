"""Reading the configuration: .config (kconfiglib), the settings built from it, image lists.

The only modules that read .config; everything else takes a Settings."""
