"""Vote and suggestion stores behind one interface, chosen by URL."""
