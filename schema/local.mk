# schema/: ordered SQL migrations, installed under $(pkgdatadir)/schema.
