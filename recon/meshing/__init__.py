"""meshing."""
