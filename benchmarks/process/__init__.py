"""Process plumbing shared by training and benchmark processes, apart from both: glibc malloc
tuning (allocator.py) and the fault-injection seam the crash-safety tests drive (faults.py)."""
