/* The relay's per-datagram fast path: epoll, recv, send, RFC 3550 bookkeeping, recording buffer.
 *
 * Why C: in Python a relayed datagram cost ~11 us of CPU, half of it the interpreter around
 * the kernel's recv + send (see benchmarks/README.md, "## Media"). Here the whole path is one
 * loop over epoll events with no Python object touched for an in-order packet.
 *
 * What lives here, and nothing more (rtp/relay.py owns every decision):
 *
 * Core  - one epoll set. It serves two kinds of file descriptors: fast legs (a Leg attached to
 *         a socket connected to its peer: everything below happens in C) and plain readers (a
 *         Python callable per fd: the unconnected sockets that latch and count strangers, and
 *         RTCP). ``poll(rounds)`` runs up to ``rounds`` rounds of epoll_wait(0), reading one
 *         datagram per ready socket per round (level-triggered: a socket with more is ready
 *         again next round), and says whether the set was still busy.
 *
 * Leg   - one direction of a call as the relay sees it: datagrams received from this leg's
 *         peer. ``forward`` (and the attached socket, in C) sends each datagram to the other
 *         leg's peer (``set_out``: a connected socket, or an unconnected one plus an address),
 *         appends (arrival, datagram) to a recording buffer when ``recording`` is set
 *         (``drain`` hands the batch to Python), and runs the in-order branch of
 *         ``StreamAnalyzer.packet`` (rtp/packet.py) on a lent copy of its state. Any other
 *         datagram (new SSRC, loss, misorder, RFC 4733 event, RTCP-mux, malformed) goes to the
 *         Python ``on_slow(data, arrival)`` callable, which settles the lent state into the
 *         analyzer, runs the general path there and lends the state back (``take_state`` /
 *         ``put_state``). The arithmetic below must stay identical to the Python fast path.
 *
 * Errors never raise per datagram: failed sends (EAGAIN, ECONNREFUSED) count ``send_errors``,
 * errors reported by recv on a connected socket (an ICMP port-unreachable from the peer)
 * count ``receive_errors``; an exception from a Python callback is reported as unraisable.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RECV_SIZE 2048
#define MAX_EVENTS 256
/* A recording buffer holds at most this much between two drains (about 25 s of G.711). */
#define RECORD_LIMIT (1 << 20)

typedef struct Leg Leg;

/* One registered fd. Freed only outside dispatch, so an event already returned by
 * epoll_wait never points at freed memory when a callback removes another fd. */
typedef struct Entry {
    int fd;
    int dead;
    PyObject *callback; /* plain reader, or NULL */
    Leg *leg;           /* fast leg (strong reference), or NULL */
    struct Entry *next_dead;
} Entry;

typedef struct {
    PyObject_HEAD
    int epfd;
    int dispatching;
    Py_ssize_t registered;
    Entry **by_fd;
    Py_ssize_t by_fd_len;
    Entry *graveyard;
    unsigned char buf[RECV_SIZE];
} Core;

struct Leg {
    PyObject_HEAD
    Core *core;
    Entry *entry;
    PyObject *on_slow;
    int closed;
    /* where datagrams go: out_fd < 0 = nowhere; out_len 0 = connected socket */
    int out_fd;
    socklen_t out_len;
    struct sockaddr_storage out_addr;
    /* recording buffer: records of [double arrival][uint32 size][size bytes] */
    int recording;
    char *rec;
    Py_ssize_t rec_len, rec_cap, rec_count;
    /* counters */
    Py_ssize_t dropped_no_destination, send_errors, receive_errors, record_overflow;
    /* lent StreamAnalyzer fast-path state (see rtp/packet.py) */
    long long packets, octets;
    long long pt, next_seq, ssrc, max_seq, cycles, received, last_ts, rate;
    double jitter, max_jitter, last_arrival;
};

static PyTypeObject CoreType;
static PyTypeObject LegType;

static int as_fd(PyObject *arg, int *fd) {
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 0 || v > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "bad file descriptor");
        return -1;
    }
    *fd = (int)v;
    return 0;
}

static double monotonic_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* time.monotonic() on Linux */
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------------ Leg */

static void record_append(Leg *leg, const unsigned char *data, Py_ssize_t size, double now) {
    Py_ssize_t need = leg->rec_len + (Py_ssize_t)(sizeof(double) + sizeof(uint32_t)) + size;
    if (need > leg->rec_cap) {
        if (need > RECORD_LIMIT) {
            leg->record_overflow++;
            return;
        }
        Py_ssize_t cap = leg->rec_cap ? leg->rec_cap : 4096;
        while (cap < need)
            cap *= 2;
        char *grown = PyMem_Realloc(leg->rec, (size_t)cap);
        if (grown == NULL) {
            leg->record_overflow++;
            return;
        }
        leg->rec = grown;
        leg->rec_cap = cap;
    }
    char *p = leg->rec + leg->rec_len;
    uint32_t n = (uint32_t)size;
    memcpy(p, &now, sizeof now);
    memcpy(p + sizeof now, &n, sizeof n);
    memcpy(p + sizeof now + sizeof n, data, (size_t)size);
    leg->rec_len = need;
    leg->rec_count++;
}

/* Relay, record and account one datagram; -1 only when the slow callback cannot be called. */
static int leg_forward(Leg *leg, const unsigned char *d, Py_ssize_t n, double now) {
    if (leg->out_fd < 0) {
        leg->dropped_no_destination++;
    } else {
        ssize_t sent = leg->out_len
            ? sendto(leg->out_fd, d, (size_t)n, 0, (struct sockaddr *)&leg->out_addr, leg->out_len)
            : send(leg->out_fd, d, (size_t)n, 0);
        if (sent < 0)
            leg->send_errors++;
    }
    if (leg->recording)
        record_append(leg, d, n, now);
    if (n >= 12) {
        long long seq = (d[2] << 8) | d[3];
        uint32_t ts = ((uint32_t)d[4] << 24) | ((uint32_t)d[5] << 16) | ((uint32_t)d[6] << 8) | d[7];
        long long ssrc = ((long long)d[8] << 24) | (d[9] << 16) | (d[10] << 8) | d[11];
        if (seq == leg->next_seq && (d[1] & 0x7F) == leg->pt && ssrc == leg->ssrc &&
            (d[0] & 0xC0) == 0x80) {
            /* StreamAnalyzer.packet's in-order branch, operation for operation */
            leg->packets++;
            leg->octets += n;
            if (seq == 0)
                leg->cycles += 65536;
            leg->max_seq = seq;
            leg->next_seq = (seq + 1) & 0xFFFF;
            leg->received++;
            int32_t dts = (int32_t)(uint32_t)(ts - (uint32_t)leg->last_ts);
            double dv = (now - leg->last_arrival) * (double)leg->rate - (double)dts;
            double jitter = leg->jitter;
            jitter += ((dv >= 0 ? dv : -dv) - jitter) * 0.0625;
            leg->jitter = jitter;
            if (jitter > leg->max_jitter)
                leg->max_jitter = jitter;
            leg->last_arrival = now;
            leg->last_ts = ts;
            return 0;
        }
    }
    if (leg->on_slow == NULL)
        return 0;
    PyObject *res = PyObject_CallFunction(leg->on_slow, "y#d", (const char *)d, n, now);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

static void leg_receive(Leg *leg, Core *core, int fd) {
    ssize_t n = recv(fd, core->buf, RECV_SIZE, 0);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            leg->receive_errors++;
        return;
    }
    if (leg_forward(leg, core->buf, n, monotonic_now()) < 0)
        PyErr_WriteUnraisable(leg->on_slow);
}

static int core_unregister(Core *core, int fd);
static int core_register(Core *core, int fd, PyObject *callback, Leg *leg);

static PyObject *Leg_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"core", "on_slow", NULL};
    PyObject *core, *on_slow;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!O:Leg", kwlist, &CoreType, &core, &on_slow))
        return NULL;
    if (!PyCallable_Check(on_slow)) {
        PyErr_SetString(PyExc_TypeError, "on_slow must be callable");
        return NULL;
    }
    Leg *self = (Leg *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    Py_INCREF(core);
    self->core = (Core *)core;
    Py_INCREF(on_slow);
    self->on_slow = on_slow;
    self->out_fd = -1;
    self->pt = -1; /* no fast path until put_state lends one */
    self->ssrc = -1;
    self->next_seq = -1;
    self->rate = 8000;
    return (PyObject *)self;
}

static int Leg_traverse(Leg *self, visitproc visit, void *arg) {
    Py_VISIT(self->core);
    Py_VISIT(self->on_slow);
    return 0;
}

static int Leg_clear(Leg *self) {
    Py_CLEAR(self->on_slow);
    Py_CLEAR(self->core);
    return 0;
}

static void Leg_dealloc(Leg *self) {
    PyObject_GC_UnTrack(self);
    Leg_clear(self);
    PyMem_Free(self->rec);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Leg_attach(Leg *self, PyObject *arg) {
    int fd;
    if (as_fd(arg, &fd) < 0)
        return NULL;
    if (self->closed || self->core == NULL) {
        PyErr_SetString(PyExc_ValueError, "leg is closed");
        return NULL;
    }
    if (self->entry != NULL) {
        PyErr_SetString(PyExc_ValueError, "leg already attached to a socket");
        return NULL;
    }
    if (core_register(self->core, fd, NULL, self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static void leg_detach(Leg *self) {
    if (self->entry != NULL && self->core != NULL) {
        core_unregister(self->core, self->entry->fd); /* clears self->entry */
    }
}

static PyObject *Leg_detach(Leg *self, PyObject *Py_UNUSED(ignored)) {
    leg_detach(self);
    Py_RETURN_NONE;
}

static PyObject *Leg_set_out(Leg *self, PyObject *args) {
    int fd;
    const char *host = NULL;
    int port = 0;
    if (!PyArg_ParseTuple(args, "i|zi:set_out", &fd, &host, &port))
        return NULL;
    if (fd < 0 || host == NULL) {
        self->out_fd = fd < 0 ? -1 : fd;
        self->out_len = 0;
        Py_RETURN_NONE;
    }
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "port out of range");
        return NULL;
    }
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    socklen_t len;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        len = sizeof *v6;
    } else {
        PyErr_Format(PyExc_ValueError, "not an IP address literal: %s", host);
        return NULL;
    }
    self->out_addr = addr;
    self->out_len = len;
    self->out_fd = fd;
    Py_RETURN_NONE;
}

static PyObject *Leg_forward(Leg *self, PyObject *args) {
    Py_buffer data;
    double now;
    if (!PyArg_ParseTuple(args, "y*d:forward", &data, &now))
        return NULL;
    int rc = self->closed ? 0 : leg_forward(self, data.buf, data.len, now);
    PyBuffer_Release(&data);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Leg_drain(Leg *self, PyObject *Py_UNUSED(ignored)) {
    Py_ssize_t count = self->rec_count;
    PyObject *packets = PyList_New(count);
    PyObject *arrivals = PyList_New(count);
    if (packets == NULL || arrivals == NULL)
        goto fail;
    const char *p = self->rec;
    for (Py_ssize_t i = 0; i < count; i++) {
        double at;
        uint32_t n;
        memcpy(&at, p, sizeof at);
        memcpy(&n, p + sizeof at, sizeof n);
        p += sizeof at + sizeof n;
        PyObject *b = PyBytes_FromStringAndSize(p, n);
        PyObject *f = PyFloat_FromDouble(at);
        if (b == NULL || f == NULL) {
            Py_XDECREF(b);
            Py_XDECREF(f);
            goto fail;
        }
        PyList_SET_ITEM(packets, i, b);
        PyList_SET_ITEM(arrivals, i, f);
        p += n;
    }
    self->rec_len = 0;
    self->rec_count = 0;
    return Py_BuildValue("(NN)", packets, arrivals);
fail:
    Py_XDECREF(packets);
    Py_XDECREF(arrivals);
    return NULL;
}

static PyObject *Leg_take_state(Leg *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *res = Py_BuildValue(
        "(LL(LLLLLLdddLL))", self->packets, self->octets, self->pt, self->next_seq, self->ssrc,
        self->max_seq, self->cycles, self->received, self->jitter, self->max_jitter,
        self->last_arrival, self->last_ts, self->rate);
    if (res == NULL)
        return NULL;
    self->packets = self->octets = 0;
    self->pt = -1; /* every datagram is slow until the state is lent again */
    return res;
}

static PyObject *Leg_put_state(Leg *self, PyObject *state) {
    long long pt, next_seq, ssrc, max_seq, cycles, received, last_ts, rate;
    double jitter, max_jitter, last_arrival;
    if (!PyArg_ParseTuple(state, "LLLLLLdddLL:put_state", &pt, &next_seq, &ssrc, &max_seq,
                          &cycles, &received, &jitter, &max_jitter, &last_arrival, &last_ts,
                          &rate))
        return NULL;
    self->pt = pt;
    self->next_seq = next_seq;
    self->ssrc = ssrc;
    self->max_seq = max_seq;
    self->cycles = cycles;
    self->received = received;
    self->jitter = jitter;
    self->max_jitter = max_jitter;
    self->last_arrival = last_arrival;
    self->last_ts = last_ts;
    self->rate = rate;
    Py_RETURN_NONE;
}

static PyObject *Leg_close(Leg *self, PyObject *Py_UNUSED(ignored)) {
    leg_detach(self);
    self->closed = 1;
    self->out_fd = -1;
    self->recording = 0;
    Py_CLEAR(self->on_slow);
    Py_RETURN_NONE;
}

static PyMethodDef Leg_methods[] = {
    {"attach", (PyCFunction)Leg_attach, METH_O,
     "attach(fd): receive from this socket (connected to the leg's peer) in C."},
    {"detach", (PyCFunction)Leg_detach, METH_NOARGS, "Stop receiving from the attached socket."},
    {"set_out", (PyCFunction)Leg_set_out, METH_VARARGS,
     "set_out(fd, host=None, port=0): send datagrams on fd (to host:port if given); fd -1: "
     "drop them and count dropped_no_destination."},
    {"forward", (PyCFunction)Leg_forward, METH_VARARGS,
     "forward(data, arrival): what the C path does after recv, for a datagram Python read."},
    {"drain", (PyCFunction)Leg_drain, METH_NOARGS,
     "drain() -> (datagrams, arrivals) recorded since the last drain, in arrival order."},
    {"take_state", (PyCFunction)Leg_take_state, METH_NOARGS,
     "take_state() -> (packets, bytes, state): take back the lent analyzer state."},
    {"put_state", (PyCFunction)Leg_put_state, METH_O,
     "put_state(state): lend StreamAnalyzer fast-path state to the C path."},
    {"close", (PyCFunction)Leg_close, METH_NOARGS, "Detach, send nothing, record nothing."},
    {NULL}};

static PyMemberDef Leg_members[] = {
    {"recording", T_INT, offsetof(Leg, recording), 0, "append datagrams to the buffer"},
    {"dropped_no_destination", T_PYSSIZET, offsetof(Leg, dropped_no_destination), 0, NULL},
    {"send_errors", T_PYSSIZET, offsetof(Leg, send_errors), 0, NULL},
    {"receive_errors", T_PYSSIZET, offsetof(Leg, receive_errors), READONLY, NULL},
    {"record_overflow", T_PYSSIZET, offsetof(Leg, record_overflow), READONLY,
     "datagrams not recorded because nobody drained the buffer"},
    {NULL}};

static PyObject *Leg_get_attached(Leg *self, void *closure) {
    return PyBool_FromLong(self->entry != NULL);
}

static PyGetSetDef Leg_getset[] = {
    {"attached", (getter)Leg_get_attached, NULL, "receiving from a socket in C", NULL},
    {NULL}};

static PyTypeObject LegType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "outbound_pro.rtp._fastpath.Leg",
    .tp_doc = "Leg(core, on_slow): one receiving leg of a relayed call, in C.",
    .tp_basicsize = sizeof(Leg),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Leg_new,
    .tp_dealloc = (destructor)Leg_dealloc,
    .tp_traverse = (traverseproc)Leg_traverse,
    .tp_clear = (inquiry)Leg_clear,
    .tp_methods = Leg_methods,
    .tp_members = Leg_members,
    .tp_getset = Leg_getset,
};

/* ----------------------------------------------------------------------------- Core */

static void entry_release(Entry *e) {
    Py_CLEAR(e->callback);
    Py_CLEAR(e->leg);
    PyMem_Free(e);
}

static void core_bury(Core *core) {
    while (core->graveyard != NULL) {
        Entry *e = core->graveyard;
        core->graveyard = e->next_dead;
        entry_release(e);
    }
}

static int core_register(Core *core, int fd, PyObject *callback, Leg *leg) {
    if (core->epfd < 0) {
        PyErr_SetString(PyExc_ValueError, "core is closed");
        return -1;
    }
    if (fd < 0) {
        PyErr_SetString(PyExc_ValueError, "negative file descriptor");
        return -1;
    }
    if (fd < core->by_fd_len && core->by_fd[fd] != NULL) {
        PyErr_Format(PyExc_FileExistsError, "fd %d is already registered", fd);
        return -1;
    }
    if (fd >= core->by_fd_len) {
        Py_ssize_t len = core->by_fd_len ? core->by_fd_len : 256;
        while (len <= fd)
            len *= 2;
        Entry **grown = PyMem_Realloc(core->by_fd, (size_t)len * sizeof(Entry *));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memset(grown + core->by_fd_len, 0, (size_t)(len - core->by_fd_len) * sizeof(Entry *));
        core->by_fd = grown;
        core->by_fd_len = len;
    }
    Entry *e = PyMem_Calloc(1, sizeof(Entry));
    if (e == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    e->fd = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = e};
    if (epoll_ctl(core->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        PyMem_Free(e);
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    Py_XINCREF(callback);
    e->callback = callback;
    if (leg != NULL) {
        Py_INCREF(leg);
        e->leg = leg;
        leg->entry = e;
    }
    core->by_fd[fd] = e;
    core->registered++;
    return 0;
}

/* 1 when fd was registered. Never fails: an fd already closed left the set by itself. */
static int core_unregister(Core *core, int fd) {
    if (fd < 0 || fd >= core->by_fd_len || core->by_fd[fd] == NULL)
        return 0;
    Entry *e = core->by_fd[fd];
    core->by_fd[fd] = NULL;
    core->registered--;
    if (core->epfd >= 0)
        epoll_ctl(core->epfd, EPOLL_CTL_DEL, fd, NULL);
    e->dead = 1;
    if (e->leg != NULL)
        e->leg->entry = NULL;
    e->next_dead = core->graveyard;
    core->graveyard = e;
    if (!core->dispatching)
        core_bury(core);
    return 1;
}

static PyObject *Core_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    if (!PyArg_ParseTuple(args, ":Core"))
        return NULL;
    Core *self = (Core *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (self->epfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void core_close(Core *self) {
    for (Py_ssize_t fd = 0; fd < self->by_fd_len; fd++)
        core_unregister(self, (int)fd);
    if (self->epfd >= 0) {
        close(self->epfd);
        self->epfd = -1;
    }
}

static int Core_traverse(Core *self, visitproc visit, void *arg) {
    for (Py_ssize_t fd = 0; fd < self->by_fd_len; fd++) {
        Entry *e = self->by_fd[fd];
        if (e != NULL) {
            Py_VISIT(e->callback);
            Py_VISIT(e->leg);
        }
    }
    for (Entry *e = self->graveyard; e != NULL; e = e->next_dead) {
        Py_VISIT(e->callback);
        Py_VISIT(e->leg);
    }
    return 0;
}

static int Core_clear(Core *self) {
    for (Py_ssize_t fd = 0; fd < self->by_fd_len; fd++) {
        Entry *e = self->by_fd[fd];
        if (e != NULL) {
            Py_CLEAR(e->callback);
            Py_CLEAR(e->leg);
        }
    }
    return 0;
}

static void Core_dealloc(Core *self) {
    PyObject_GC_UnTrack(self);
    self->dispatching = 0;
    core_close(self);
    core_bury(self);
    PyMem_Free(self->by_fd);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Core_poll(Core *self, PyObject *arg) {
    long rounds = PyLong_AsLong(arg);
    if (rounds == -1 && PyErr_Occurred())
        return NULL;
    if (self->epfd < 0) {
        PyErr_SetString(PyExc_ValueError, "core is closed");
        return NULL;
    }
    struct epoll_event events[MAX_EVENTS];
    int busy = 0;
    Py_INCREF(self); /* a callback may drop the last other reference */
    self->dispatching++;
    for (long r = 0; r < rounds; r++) {
        int n = epoll_wait(self->epfd, events, MAX_EVENTS, 0);
        busy = n > 0;
        if (!busy)
            break;
        for (int i = 0; i < n; i++) {
            Entry *e = events[i].data.ptr;
            if (e->dead)
                continue;
            if (e->leg != NULL) {
                leg_receive(e->leg, self, e->fd);
            } else if (e->callback != NULL) {
                PyObject *res = PyObject_CallNoArgs(e->callback);
                if (res == NULL)
                    PyErr_WriteUnraisable(e->callback);
                Py_XDECREF(res);
            }
            if (self->epfd < 0) /* closed by a callback */
                break;
        }
        if (self->epfd < 0)
            break;
    }
    self->dispatching--;
    if (!self->dispatching)
        core_bury(self);
    Py_DECREF(self);
    return PyBool_FromLong(busy);
}

static PyObject *Core_add_reader(Core *self, PyObject *args) {
    int fd;
    PyObject *callback;
    if (!PyArg_ParseTuple(args, "iO:add_reader", &fd, &callback))
        return NULL;
    if (!PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "callback must be callable");
        return NULL;
    }
    if (core_register(self, fd, callback, NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Core_remove_reader(Core *self, PyObject *arg) {
    int fd;
    if (as_fd(arg, &fd) < 0)
        return NULL;
    return PyBool_FromLong(core_unregister(self, fd));
}

static PyObject *Core_fileno(Core *self, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromLong(self->epfd);
}

static PyObject *Core_close(Core *self, PyObject *Py_UNUSED(ignored)) {
    core_close(self);
    Py_RETURN_NONE;
}

static PyObject *Core_get_registered(Core *self, void *closure) {
    return PyLong_FromSsize_t(self->registered);
}

static PyMethodDef Core_methods[] = {
    {"poll", (PyCFunction)Core_poll, METH_O,
     "poll(rounds) -> busy: up to `rounds` rounds of one datagram per ready socket; True when "
     "the last round still found sockets ready."},
    {"add_reader", (PyCFunction)Core_add_reader, METH_VARARGS,
     "add_reader(fd, callback): call callback() when fd is readable."},
    {"remove_reader", (PyCFunction)Core_remove_reader, METH_O,
     "remove_reader(fd) -> bool: whether fd was registered (reader or leg)."},
    {"fileno", (PyCFunction)Core_fileno, METH_NOARGS, "The epoll file descriptor."},
    {"close", (PyCFunction)Core_close, METH_NOARGS, "Unregister everything, close the set."},
    {NULL}};

static PyGetSetDef Core_getset[] = {
    {"registered", (getter)Core_get_registered, NULL, "file descriptors in the set", NULL},
    {NULL}};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "outbound_pro.rtp._fastpath.Core",
    .tp_doc = "Core(): one epoll set serving fast legs and plain readers.",
    .tp_basicsize = sizeof(Core),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Core_new,
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_traverse = (traverseproc)Core_traverse,
    .tp_clear = (inquiry)Core_clear,
    .tp_methods = Core_methods,
    .tp_getset = Core_getset,
};

static struct PyModuleDef fastpath_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "outbound_pro.rtp._fastpath",
    .m_doc = "The RTP relay's per-datagram fast path (see the comment at the top of the source).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__fastpath(void) {
    if (PyType_Ready(&CoreType) < 0 || PyType_Ready(&LegType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&fastpath_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Core", (PyObject *)&CoreType) < 0 ||
        PyModule_AddObjectRef(m, "Leg", (PyObject *)&LegType) < 0 ||
        PyModule_AddIntConstant(m, "RECV_SIZE", RECV_SIZE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
