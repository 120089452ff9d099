"""The main job as a library: catalogue -> train -> export -> index, each stage in its own folder."""
