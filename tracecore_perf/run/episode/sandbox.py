"""``--sandbox``: each episode in its own user, mount, IPC, PID and network namespaces.

Standard library only (ctypes for the system calls), like the rest of this package; a worker
loads it (``state.load_sandbox``) the first time a job asks for the sandbox, so every episode
process it forks has it. :func:`enter` is called in the forked episode process, after its
descriptors, process group, memory bound and working directory are set, before TraceCore
runs. It returns only in the sandboxed episode; the process that called it waits for that
episode and ends as it ended (same exit code, same signal), so the worker's ``wait4`` sees
what it always saw, with the CPU time of every process of the sandbox summed in.

The steps, in order (the first needs a single-threaded process, which a forked child is):

1. ``unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWIPC|CLONE_NEWPID|CLONE_NEWNET)``; the user
   namespace owns the others, so this works without privileges where the kernel allows
   unprivileged user namespaces (System V shared memory and queues become its own).
   ``setgroups`` = deny, then our uid and gid mapped to themselves.
2. ``fork``: a new PID namespace takes effect for children only. The child is process 1 of
   it (its init); the caller waits for it and mirrors its end (:func:`_wait_and_mirror`).
3. In the init: die with the caller (PDEATHSIG), mounts private, a fresh ``/proc`` (it shows
   only this namespace's processes), an empty tmpfs over the scratch root with only this
   episode's scratch directory bound back, an empty read-only tmpfs over each hidden path
   (the run directory), a ``/dev`` of a few harmless devices (null, zero, full, random,
   urandom, tty; no disk, no kernel log) and an empty ``/dev/shm``, the whole tree read-only
   in one ``mount_setattr`` (Linux >= 5.12; older kernels remount each mount read-only) but
   the scratch directory, loopback up
   (nothing else: no network), ``TMPDIR`` and ``HOME`` in the scratch directory, a session
   keyring of its own (not the login session's, with the user's keys), every
   capability dropped (else the episode, root in its namespace, could unmount what hides
   the run directory), ``no_new_privs``.
4. ``fork`` again: the episode is process 2, so signals and ``abort()`` behave as they do
   outside (an init ignores signals it has no handler for); the init reaps everything and,
   when the episode ends, hands its wait status to the caller, and exits, which kills
   whatever the episode left in the namespace.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import signal
import socket
import struct

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACES = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET
# the device nodes an episode keeps: /dev is otherwise an empty tmpfs (no disks, no kernel log)
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = 0x400, 0x800, 1 << 21, 1 << 24
AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = -100, 0x8000, 0x1
SYS_MOUNT_SETATTR = 442  # the same number on x86_64 and aarch64

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP = 1, 4, 24
PR_SET_SECUREBITS, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 28, 38, 47, 4
SECUREBITS_LOCKED = 0xEF  # noroot, no_setuid_fixup, no_cap_ambient_raise, each locked
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
EXIT_SANDBOX_FAILED = 125
KEYCTL_JOIN_SESSION_KEYRING = 1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long


class SandboxError(OSError):
    """A step failed; ``str()`` is one line fit for a row's error or the user."""


class _MountAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("attr_set", "attr_clr", "propagation", "userns_fd")]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _check(result: int, what: str) -> None:
    if result < 0:
        code = ctypes.get_errno()
        raise SandboxError(code, f"{what}: {errno.errorcode.get(code, code)} ({os.strerror(code)})")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = lambda text: None if text is None else os.fsencode(text)  # noqa: E731
    _check(_libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)), f"mount {target}")


def _mount_setattr(path: str, flags: int, attr_set: int = 0, attr_clr: int = 0) -> None:
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    result = _libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, os.fsencode(path), flags, ctypes.byref(attr), ctypes.sizeof(attr))
    _check(result, f"mount_setattr {path}")


def _prctl(option: int, value: int = 0) -> None:
    _check(_libc.prctl(option, value, 0, 0, 0), f"prctl({option})")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def kernel_settings() -> str:
    """The kernel's switches for unprivileged user namespaces, for a refusal's one line."""
    found = []
    for path in (
        "/proc/sys/kernel/unprivileged_userns_clone",
        "/proc/sys/user/max_user_namespaces",
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
    ):
        try:
            with open(path) as fh:
                found.append(f"{os.path.basename(path)}={fh.read().strip()}")
        except OSError:
            continue
    return ", ".join(found) or "no user-namespace settings found"


def _unshare() -> None:
    uid, gid = os.geteuid(), os.getegid()  # read before: inside, until mapped, they read as nobody
    if _libc.unshare(NAMESPACES) < 0:
        code = ctypes.get_errno()
        raise SandboxError(
            code,
            f"--sandbox: this host does not allow an unprivileged process new user namespaces "
            f"(unshare: {errno.errorcode.get(code, code)}; {kernel_settings()})",
        )
    if uid != 0:
        _prctl(PR_SET_DUMPABLE, 1)  # a process that changed uid is not dumpable: its /proc/self is root's
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
    _write("/proc/self/gid_map", f"{gid} {gid} 1\n")


def _tried_in_a_child(trial) -> str | None:
    """``trial()`` in a forked child (so this process keeps none of what it changes): None if
    it returned None, else the one line it returned or the OSError it raised."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            message = (trial() or "").encode()
        except OSError as exc:
            message = str(exc).encode()
        os.write(write, message)
        os._exit(0)
    os.close(write)
    answer = b""
    while chunk := os.read(read, 4096):
        answer += chunk
    os.close(read)
    os.waitpid(pid, 0)
    return answer.decode() or None


def probe() -> str | None:
    """Whether episodes can be sandboxed here: a forked child tries the namespaces and a mount.
    None if so, else the one line to refuse ``--sandbox`` with."""

    def trial() -> None:
        _unshare()
        _mount(None, "/", None, MS_REC | MS_PRIVATE)

    return _tried_in_a_child(trial)


def enter(scratch: str, scratch_root: str, hidden: list[str]) -> None:
    """Sandbox this (freshly forked, single-threaded) episode process; see the module's
    docstring. Returns only in the episode (process 2 of its PID namespace)."""
    scratch, scratch_root = os.path.realpath(scratch), os.path.realpath(scratch_root)
    _unshare()
    status_read, status_write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(status_write)
        _wait_and_mirror(pid, status_read)  # never returns
    os.close(status_read)
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != 0:  # an init sees parent 0; otherwise the caller is already gone
            os._exit(EXIT_SANDBOX_FAILED)
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        own = os.open(scratch, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if scratch_root != scratch:  # the siblings' scratch directories out of sight
                _mount("tmpfs", scratch_root, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
                os.makedirs(scratch, exist_ok=True)
            _mount(f"/proc/self/fd/{own}", scratch, None, MS_BIND | MS_REC)
        finally:
            os.close(own)
        for path in hidden:
            if not os.path.isabs(path):  # it would be looked up from the scratch directory: hide nothing
                raise SandboxError(errno.EINVAL, f"a path to hide is not absolute: {path}")
            path = os.path.realpath(path)
            if os.path.isdir(path):
                _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=000")
        _minimal_dev()
        _read_only_but(scratch)
        _loopback_up()
        os.chdir(scratch)  # the old working directory is the read-only one under the mounts
        os.environ["TMPDIR"] = os.environ["HOME"] = scratch
        _new_session_keyring()
        _drop_capabilities()
    except BaseException as exc:  # noqa: BLE001 - the episode's row says what went wrong
        os.write(2, f"tracecore-perf --sandbox: {exc}\n".encode())
        os._exit(EXIT_SANDBOX_FAILED)
    episode = os.fork()
    if episode:
        _init(episode, status_write)  # never returns
    os.close(status_write)


# --- one process per episode (--instructions) ------------------------------------------------
#
# Callgrind counts each process apart: work an episode hands to a process it forks or execs is
# in no count, and such a process could outlive it to serve the next. Under --instructions an
# episode (and the check of its agent file) runs with a seccomp filter that refuses every way
# to start a process or to leave its namespaces; threads stay allowed (one process, counted).

SECCOMP_MODE_FILTER, PR_SET_SECCOMP, CLONE_THREAD = 2, 22, 0x00010000
SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
# audit arch, clone, then the refused calls: fork, vfork, execve, execveat, unshare, setns
# (clone3 answers ENOSYS, so glibc falls back to clone, whose flags a filter can read)
_SYSCALLS = {
    "x86_64": (0xC000003E, 56, (57, 58, 59, 322, 272, 308)),
    "aarch64": (0xC00000B7, 220, (221, 281, 97, 268)),
}
SYS_CLONE3 = 435  # the same number on both
X32_SYSCALL_BIT = 0x40000000


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _filter_program(machine: str) -> bytes:
    """The BPF program: refuse process creation and namespace changes, allow the rest."""
    arch, clone, refused = _SYSCALLS[machine]
    ld_abs, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_J*|BPF_K, BPF_RET|BPF_K
    program: list[tuple[int, int, int, int]] = [
        (ld_abs, 0, 0, 4),  # seccomp_data.arch
        (jeq, 1, 0, arch),
        (ret, 0, 0, SECCOMP_RET_KILL_PROCESS),  # another ABI (x32, i386 on x86_64): no way round the filter
        (ld_abs, 0, 0, 0),  # seccomp_data.nr
        (jge, 0, 1, X32_SYSCALL_BIT),  # x86_64's x32 numbers: the same calls under other numbers
        (ret, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM),
        (jeq, 0, 1, SYS_CLONE3),
        (ret, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS),
    ]
    for number in refused:
        program += [(jeq, 0, 1, number), (ret, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM)]
    program += [
        (jeq, 1, 0, clone),
        (ret, 0, 0, SECCOMP_RET_ALLOW),
        (ld_abs, 0, 0, 16),  # seccomp_data.args[0], its low half: clone's flags
        (jset, 0, 1, CLONE_THREAD),
        (ret, 0, 0, SECCOMP_RET_ALLOW),  # a thread of this process
        (ret, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM),  # a new process
    ]
    return b"".join(struct.pack("HBBI", *instruction) for instruction in program)


def single_process_filter() -> tuple[ctypes.Array, _SockFprog]:
    """The seccomp filter :func:`forbid_new_processes` installs (the program, and the
    sock_fprog pointing at it). The zygote builds it once and keeps it on the episode side's
    state (``state.forbid_new_processes``), so each episode only installs it: two system calls,
    a few thousand instructions in its count. Raises SandboxError where the machine has no
    filter of ours."""
    machine = os.uname().machine
    if machine not in _SYSCALLS:
        why = f"--instructions keeps each episode to one process with a filter for x86_64 or aarch64, not {machine}"
        raise SandboxError(errno.ENOSYS, why)
    program = ctypes.create_string_buffer(_filter_program(machine))
    return program, _SockFprog(len(program.raw) // 8, ctypes.addressof(program))


def forbid_new_processes(prepared: tuple[ctypes.Array, _SockFprog] | None = None) -> None:
    """From now on this process can start no process (fork, vfork, clone without
    CLONE_THREAD, exec) nor enter or make namespaces: each fails with EPERM (an exec under
    Valgrind ends the process). For good: a seccomp filter is never lifted. ``prepared``: the
    filter built beforehand (built now if None). Raises SandboxError where the kernel or the
    machine does not allow it."""
    prepared = prepared or single_process_filter()
    try:
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prepared[1]), 0, 0), "seccomp filter")
    except OSError as exc:
        why = f"--instructions keeps each episode to one process, which this host refuses: {exc}"
        raise SandboxError(exc.errno, why) from None


def probe_single_process() -> str | None:
    """Whether :func:`forbid_new_processes` works here: a forked child tries it and then a
    fork, which must fail. None if so, else the one line to refuse ``--instructions`` with."""

    def trial() -> str | None:
        forbid_new_processes()
        try:
            child = os.fork()
        except OSError:
            return None
        if child == 0:
            os._exit(0)
        return "--instructions: the seccomp filter that keeps an episode to one process let a fork through"

    return _tried_in_a_child(trial)


def _minimal_dev() -> None:
    """A tmpfs over /dev with the harmless devices bound back, /dev/fd and the std streams
    as links into /proc, and an empty /dev/shm (read-only with the rest)."""
    present = [name for name in DEVICES if os.path.exists(f"/dev/{name}")]
    keep = {name: os.open(f"/dev/{name}", os.O_PATH | os.O_CLOEXEC) for name in present}
    try:
        _mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755")
        for name, fd in keep.items():
            with open(f"/dev/{name}", "w"):
                pass
            _mount(f"/proc/self/fd/{fd}", f"/dev/{name}", None, MS_BIND)
    finally:
        for fd in keep.values():
            os.close(fd)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1")):
        os.symlink(target, f"/dev/{name}")
    os.symlink("/proc/self/fd/2", "/dev/stderr")
    os.mkdir("/dev/shm")


def _read_only_but(scratch: str) -> None:
    try:
        _mount_setattr("/", AT_RECURSIVE, attr_set=MOUNT_ATTR_RDONLY)
        _mount_setattr(scratch, 0, attr_clr=MOUNT_ATTR_RDONLY)
        return
    except SandboxError as exc:
        if exc.errno != errno.ENOSYS:  # a kernel before 5.12: one mount at a time below
            raise
    names = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME}
    names.update(nodiratime=MS_NODIRATIME, relatime=MS_RELATIME, strictatime=MS_STRICTATIME)
    with open("/proc/self/mountinfo") as fh:
        mounts = [line.split() for line in fh]
    for fields in mounts:
        target = fields[4].encode().decode("unicode_escape")
        kept = 0  # the flags a user namespace may not drop from a mount it inherited
        for option in fields[5].split(","):
            kept |= names.get(option, 0)
        try:
            _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)
        except SandboxError as exc:
            if exc.errno not in (errno.ENOENT, errno.EACCES):  # hidden under another mount
                raise
    _mount(None, scratch, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV)


def _new_session_keyring() -> None:
    """A session keyring of its own (an anonymous one): the login session's keyring, with the
    user's keys, is out of reach, and nothing one episode adds is seen by the next."""
    import platform

    number = {"x86_64": 250, "aarch64": 219}.get(platform.machine())  # keyctl(2)
    if number is not None:
        _check(_libc.syscall(number, KEYCTL_JOIN_SESSION_KEYRING, None), "keyctl(JOIN_SESSION_KEYRING)")


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def _drop_capabilities() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as fh:
        last = int(fh.read())
    for capability in range(last + 1):
        _prctl(PR_CAPBSET_DROP, capability)
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    _prctl(PR_SET_SECUREBITS, SECUREBITS_LOCKED)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()  # _LINUX_CAPABILITY_VERSION_3, all zero
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def _quiet(keep: int) -> None:
    """In the waiting processes: hold none of the episode's descriptors (so the worker sees
    its pipes close when the episode's end), and leave TERM/INT/HUP to the episode (the worker
    signals the whole process group; SIGKILL still ends everyone)."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    for fd in (0, 1):
        os.close(fd)
    os.closerange(3, keep)
    os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))


def _init(episode: int, status_write: int) -> None:
    """Process 1: reap every process of the namespace; when the episode is reaped, hand its
    wait status to the caller and exit (the kernel then kills the namespace's rest)."""
    try:
        _quiet(status_write)
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid == episode:
                os.write(status_write, struct.pack("i", status))
                break
    finally:
        os._exit(0)


def _wait_and_mirror(init: int, status_read: int) -> None:
    """The caller, once the init is forked: wait for it, then end as the episode ended."""
    try:
        _quiet(status_read)
        while True:
            try:
                _, status = os.waitpid(init, 0)
                break
            except ChildProcessError:
                os._exit(EXIT_SANDBOX_FAILED)
        report = os.read(status_read, 4)
        if len(report) == 4 and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            status = struct.unpack("i", report)[0]  # the episode's own wait status
        if os.WIFEXITED(status):
            os._exit(os.WEXITSTATUS(status))
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else signal.SIGKILL
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the episode dumped its core already, or not
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    finally:
        os._exit(EXIT_SANDBOX_FAILED)
