"""Models in the Music-Source-Separation-Training (MSST) format: YAML configs and their chunked
streaming, shared by the RoFormer and MDX23C engines."""
