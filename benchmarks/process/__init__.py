"""Process plumbing shared by training and benchmark processes, apart from both: glibc malloc
tuning (allocator.py), the intra-op thread count for a block (threads.py) and the fault-injection seam the crash-safety tests drive (faults.py)."""
