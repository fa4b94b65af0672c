// placeholder so the library has a source until the parser lands
