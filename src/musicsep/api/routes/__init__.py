"""One router per feature: jobs, separate (streaming), downloads, system."""
