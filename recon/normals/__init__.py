"""normals."""
