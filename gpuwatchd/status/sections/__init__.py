"""Status sections: one module each, building its part of the document and rendering it."""
