"""What the host or container lets this process use: CPUs and open files (stdlib only).

gunicorn.conf.py reads ``usable_cpus()`` for the default worker count, and each worker calls
``raise_open_files()`` as it starts. Neither imports anything heavy: the master uses them before
any worker patches sockets.

CPUs: ``os.cpu_count()`` counts the machine's, but a container or a systemd unit may be allowed
fewer, by CPU affinity (``--cpuset-cpus``, ``CPUAffinity=``, ``taskset``) or by a CFS quota
(``--cpus``, ECS ``cpu``, Kubernetes ``limits.cpu``, ``CPUQuota=``). A worker per machine CPU
under a quota of one would make every worker share one CPU's time.

Open files: every open stream holds two sockets in the worker (the client's and its upstream
connection). Container runtimes now start processes with a soft limit of 1,024 and a far higher
hard limit, which a process may raise its own soft limit to; a worker that does not tops out near
500 streams (``OSError: [Errno 24] Too many open files``).
"""

import math
import os
import resource

# Besides its streams, a worker holds its listening sockets, log files, the metrics files of
# prometheus_client, the key store's files and a few pipes.
SPARE_FILES = 64
FILES_PER_STREAM = 2  # the client's socket and the stream's connection to Bedrock


# -- CPUs ---------------------------------------------------------------------------------------


def usable_cpus(root="/"):
    """The number of CPUs this process may run on: its affinity, capped by its cgroup's CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    quota = cpu_quota(root)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def cpu_quota(root="/"):
    """The CPU time this process's cgroups allow, in CPUs (1.5 for ``--cpus 1.5``), or None for no quota.

    cgroup v2 (``cpu.max``) and v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), the smallest of
    the process's cgroup and its ancestors. ``root`` is where / is (for tests).
    """
    try:
        mounts = _read(root, "proc/self/mountinfo").splitlines()
        memberships = _read(root, "proc/self/cgroup").splitlines()
    except OSError:
        return None
    paths = {}  # controllers ("" for v2) -> this process's cgroup path
    for line in memberships:
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                paths[controller] = parts[2]
    quotas = []
    for line in mounts:
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        after = line.split(" - ", 1)[1].split()
        if len(after) < 3:
            continue
        fstype, options = after[0], after[2].split(",")
        mount_root, mount_point = _unescape(fields[3]), _unescape(fields[4])
        if fstype == "cgroup2" and "" in paths:
            for directory in _ancestry(root, mount_point, mount_root, paths[""]):
                quotas.append(_v2_quota(directory))
        elif fstype == "cgroup" and "cpu" in options and "cpu" in paths:
            for directory in _ancestry(root, mount_point, mount_root, paths["cpu"]):
                quotas.append(_v1_quota(directory))
    quotas = [quota for quota in quotas if quota is not None]
    return min(quotas) if quotas else None


def _read(root, path):
    with open(os.path.join(root, path)) as file:
        return file.read()


def _unescape(field):
    """mountinfo writes spaces and other odd bytes in paths as octal escapes (``\\040``)."""
    return field.encode().decode("unicode_escape") if "\\" in field else field


def _ancestry(root, mount_point, mount_root, path):
    """The directories of ``path``'s cgroup and its ancestors that this mount shows, deepest first.

    The mount shows the hierarchy from ``mount_root`` down. A container without a cgroup
    namespace sees its full path in /proc/self/cgroup, and its own cgroup mounted as the root.
    """
    base = os.path.normpath(os.path.join(root, mount_point.lstrip("/")))
    prefix = mount_root.rstrip("/")
    relative = path[len(prefix) :] if path == prefix or path.startswith(prefix + "/") else ""
    directory = os.path.normpath(os.path.join(base, relative.strip("/")))
    if not os.path.isdir(directory):
        directory = base
    found = [directory]
    while directory != base and directory.startswith(base):
        directory = os.path.dirname(directory)
        found.append(directory)
    return found


def _v2_quota(directory):
    try:
        quota, period = _read(directory, "cpu.max").split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def _v1_quota(directory):
    try:
        quota = int(_read(directory, "cpu.cfs_quota_us"))
        period = int(_read(directory, "cpu.cfs_period_us"))
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:  # -1: no quota
        return None
    return quota / period


# -- open files ---------------------------------------------------------------------------------


def files_needed(connections):
    """The open files a worker needs to hold ``connections`` streams at once."""
    return connections * FILES_PER_STREAM + SPARE_FILES


def raise_open_files():
    """Raise this process's soft open-files limit to its hard limit; return (soft before, soft now, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:  # Linux refuses a soft limit past fs.nr_open
        try:
            target = int(_read("/", "proc/sys/fs/nr_open"))
        except (OSError, ValueError):
            target = 1024 * 1024
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError):
            return soft, soft, hard
        return soft, target, hard
    return soft, soft, hard


def open_files_warning(connections, soft, hard):
    """What to tell the operator when ``soft`` open files cannot hold ``connections`` streams, or None."""
    needed = files_needed(connections)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    streams = max(0, (soft - SPARE_FILES) // FILES_PER_STREAM)
    shown_hard = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    limit = max(needed, 65536)
    return (
        f"The open-files limit ({soft}, hard limit {shown_hard}) holds about {streams} streams per worker, "
        f"not WORKER_CONNECTIONS={connections} (each stream holds 2 files: {needed} in all), and more streams "
        f"fail with 'Too many open files'. Raise the hard limit: docker/podman run --ulimit nofile={limit}:{limit}, "
        f"ulimits nofile in an ECS task definition, LimitNOFILE={limit} in the systemd unit, or nofile in "
        f"/etc/security/limits.conf; or set WORKER_CONNECTIONS={max(1, streams)}."
    )


def prepare_worker(connections, log):
    """At a worker's start: raise its soft open-files limit to the hard one; warn if even that is too few."""
    before, soft, hard = raise_open_files()
    if soft != before:
        log.info("Open-files limit raised from %s to %s (the hard limit)", before, soft)
    warning = open_files_warning(connections, soft, hard)
    if warning:
        log.warning("%s", warning)
