"""Face-parsing data: formats on disk, label maps, the crop, the cache, datasets, the data module, generation."""
