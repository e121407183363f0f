"""Process plumbing shared by training and benchmark processes, apart from both: glibc malloc
tuning (allocator.py), the intra-op thread count for a block (threads.py) the fault-injection seam
the crash-safety tests drive (faults.py) and the check that a path a command will write can be
written (destinations.py)."""
