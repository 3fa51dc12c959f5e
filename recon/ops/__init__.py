"""Small pure functions: kNN, voxel hashing, sampling, transforms."""
