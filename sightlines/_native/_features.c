/*
 * sightlines._native._features: the window aggregates of sightlines.features, compiled.
 *
 * The numpy code in sightlines/features.py (_event_features, _exposure_days) is
 * the reference; these two functions compute the same float64 values with the
 * same operations in the same order (sums accumulate event by event in event
 * order, as numpy's bincount does, then cumulate over the windows as cumsum
 * does), so the float32 feature table is the same bit for bit
 * (tests/test_features.py compares the two). They take one pass over a chunk's
 * events instead of numpy's dozens, and write straight into the rows of the
 * caller's float32 matrix.
 *
 * The statistics of one event list, in the order of the ``rows`` argument:
 *   n, n_{w} per window, days_since_first, days_since_last,
 *   per_day_{w} per window marked as a rate window, decayed_{h} per half-life,
 *   per summed field: (sum_{w}, mean_{w}) per window,
 *   per flag: days_since_last,
 *   per level field, per level, per level window: n_{w}.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define DAY 86400.0
#define MAX_WINDOWS 32

typedef struct {
    Py_buffer b;
    int held;
} Buf;

static int get_buf(PyObject *o, Buf *x, int writable, Py_ssize_t itemsize, const char *what) {
    if (PyObject_GetBuffer(o, &x->b, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0) return -1;
    x->held = 1;
    if (x->b.len % itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes is not a whole number of %zd-byte items", what, x->b.len,
                     itemsize);
        return -1;
    }
    return 0;
}

static void release(Buf *x) {
    if (x->held) PyBuffer_Release(&x->b);
    x->held = 0;
}

/* a tuple of floats into an array (at most MAX_WINDOWS) */
static int doubles(PyObject *t, double *out, int *n, const char *what) {
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) > MAX_WINDOWS) {
        PyErr_Format(PyExc_ValueError, "%s: a tuple of at most %d numbers", what, MAX_WINDOWS);
        return -1;
    }
    *n = (int)PyTuple_GET_SIZE(t);
    for (int i = 0; i < *n; i++) {
        out[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(t, i));
        if (out[i] == -1.0 && PyErr_Occurred()) return -1;
    }
    return 0;
}

/* numpy.searchsorted(w, x, side="right") for a short sorted w: how many w[i] <= x */
static inline int bucket_of(const double *w, int nw, double x) {
    int k = 0;
    while (k < nw && w[k] <= x) k++;
    return k;
}

static inline float f32(double x) {
    float y = (float)x;
    return isinf(y) ? NAN : y; /* beyond float32: missing, as _to_float32 does */
}

PyDoc_STRVAR(event_features_doc,
"event_features(out, n, rows, as_of, uidx, t, sums, flags, levels, windows, rate, half_lives, level_windows,\n"
"               exposure)\n\n"
"Write the statistics of one event list into ``out`` (float32, row r at [r*n, (r+1)*n)).\n"
"``rows`` (int32) gives the output row of each statistic in the order of the module docstring\n"
"(-1: not written). ``uidx`` (int64, sorted) and ``t`` (float64) are the events; ``sums`` is a\n"
"tuple of (is_flag, float64 values) per summed field; ``flags`` a tuple of float64 flag times;\n"
"``levels`` a tuple of (int16 codes, number of levels); ``rate`` a tuple of 0/1 per window;\n"
"``exposure`` (float64, one per user) the days each user has been around.");

static PyObject *event_features(PyObject *self, PyObject *args) {
    PyObject *out_o, *rows_o, *uidx_o, *t_o, *sums_o, *flags_o, *levels_o, *win_o, *rate_o, *hl_o, *lw_o, *exp_o;
    Py_ssize_t n;
    double as_of;
    if (!PyArg_ParseTuple(args, "OnOdOOO!O!O!O!O!O!O!O", &out_o, &n, &rows_o, &as_of, &uidx_o, &t_o, &PyTuple_Type,
                          &sums_o, &PyTuple_Type, &flags_o, &PyTuple_Type, &levels_o, &PyTuple_Type, &win_o,
                          &PyTuple_Type, &rate_o, &PyTuple_Type, &hl_o, &PyTuple_Type, &lw_o, &exp_o))
        return NULL;
    double win[MAX_WINDOWS], rate[MAX_WINDOWS], hl[MAX_WINDOWS], lw[MAX_WINDOWS];
    int nw, nr, nh, nlw;
    if (doubles(win_o, win, &nw, "windows") < 0 || doubles(rate_o, rate, &nr, "rate") < 0 ||
        doubles(hl_o, hl, &nh, "half_lives") < 0 || doubles(lw_o, lw, &nlw, "level_windows") < 0)
        return NULL;
    if (nr != nw) return PyErr_Format(PyExc_ValueError, "rate: one flag per window");
    int nsum = (int)PyTuple_GET_SIZE(sums_o), nflag = (int)PyTuple_GET_SIZE(flags_o);
    int nlevf = (int)PyTuple_GET_SIZE(levels_o);
    const int nb = nw + 1, nlb = nlw + 1;

    PyObject *result = NULL;
    Buf out = {0}, rows = {0}, uidx = {0}, t = {0}, expo = {0};
    Buf *sums = PyMem_Calloc(nsum + 1, sizeof(Buf)), *flags = PyMem_Calloc(nflag + 1, sizeof(Buf));
    Buf *levels = PyMem_Calloc(nlevf + 1, sizeof(Buf));
    int *sum_is_flag = PyMem_Calloc(nsum + 1, sizeof(int)), *nlev = PyMem_Calloc(nlevf + 1, sizeof(int));
    /* per-user accumulators */
    int64_t *cnt = NULL, *lcnt = NULL;
    double *dec = NULL, *ssum = NULL, *scnt = NULL, *flast = NULL;
    void *acc = NULL;
    float **dst = NULL, *scratch = NULL;
    if (!sums || !flags || !levels || !sum_is_flag || !nlev) { PyErr_NoMemory(); goto done; }

    if (get_buf(out_o, &out, 1, 4, "out") < 0 || get_buf(rows_o, &rows, 0, 4, "rows") < 0 ||
        get_buf(uidx_o, &uidx, 0, 8, "uidx") < 0 || get_buf(t_o, &t, 0, 8, "t") < 0 ||
        get_buf(exp_o, &expo, 0, 8, "exposure") < 0)
        goto done;
    Py_ssize_t m = uidx.b.len / 8;
    if (t.b.len / 8 != m) { PyErr_SetString(PyExc_ValueError, "t: one time per event"); goto done; }
    if (expo.b.len / 8 != n) { PyErr_SetString(PyExc_ValueError, "exposure: one value per user"); goto done; }
    Py_ssize_t total_levels = 0;
    for (int f = 0; f < nsum; f++) {
        PyObject *item = PyTuple_GET_ITEM(sums_o, f);
        if (!PyArg_ParseTuple(item, "pO", &sum_is_flag[f], &item)) goto done;
        if (get_buf(item, &sums[f], 0, 8, "sums") < 0) goto done;
        if (sums[f].b.len / 8 != m) { PyErr_SetString(PyExc_ValueError, "sums: one value per event"); goto done; }
    }
    for (int f = 0; f < nflag; f++) {
        if (get_buf(PyTuple_GET_ITEM(flags_o, f), &flags[f], 0, 8, "flags") < 0) goto done;
        if (flags[f].b.len / 8 != m) { PyErr_SetString(PyExc_ValueError, "flags: one time per event"); goto done; }
    }
    for (int f = 0; f < nlevf; f++) {
        PyObject *codes;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(levels_o, f), "Oi", &codes, &nlev[f])) goto done;
        if (nlev[f] < 0) { PyErr_SetString(PyExc_ValueError, "levels: a negative count"); goto done; }
        if (get_buf(codes, &levels[f], 0, 2, "levels") < 0) goto done;
        if (levels[f].b.len / 2 != m) { PyErr_SetString(PyExc_ValueError, "levels: one code per event"); goto done; }
        total_levels += nlev[f];
    }
    Py_ssize_t nstats = 1 + nw + 2 + nh + 2 * (Py_ssize_t)nsum * nw + nflag + total_levels * nlw;
    for (int k = 0; k < nw; k++) nstats += rate[k] != 0.0;
    if (rows.b.len / 4 != nstats) {
        PyErr_Format(PyExc_ValueError, "rows: %zd statistics, got %zd rows", nstats, rows.b.len / 4);
        goto done;
    }
    const int32_t *row = rows.b.buf;
    Py_ssize_t nrows_out = out.b.len / 4 / (n ? n : 1);
    for (Py_ssize_t i = 0; i < nstats; i++) {
        if (row[i] >= 0 && (n == 0 ? 0 : row[i] >= nrows_out)) {
            PyErr_Format(PyExc_ValueError, "rows: row %d outside the %zd rows of out", row[i], nrows_out);
            goto done;
        }
    }
    /* the accumulators of one user, zeroed together: counts per window bucket, per level and level bucket,
     * then decayed counts, sums and counts per summed field and bucket */
    Py_ssize_t acc_items = nb + total_levels * nlb + nh + 2 * (Py_ssize_t)nsum * nb;
    acc = PyMem_Calloc(acc_items + 1, 8);
    flast = PyMem_Calloc(nflag + 1, sizeof(double));
    /* where each statistic goes: its row of out, or a scratch row for those not written */
    dst = PyMem_Calloc(nstats + 1, sizeof(float *));
    scratch = PyMem_Calloc(n + 1, sizeof(float));
    if (!acc || !flast || !dst || !scratch) { PyErr_NoMemory(); goto done; }
    cnt = (int64_t *)acc;
    lcnt = cnt + nb;
    dec = (double *)(lcnt + total_levels * nlb);
    ssum = dec + nh;
    scnt = ssum + (Py_ssize_t)nsum * nb;

    float *o = out.b.buf;
    for (Py_ssize_t i = 0; i < nstats; i++) dst[i] = row[i] >= 0 ? o + (Py_ssize_t)row[i] * n : scratch;
    const int64_t *U = uidx.b.buf;
    const double *T = t.b.buf, *E = expo.b.buf;
    Py_ssize_t e = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t u = 0; u < n; u++) {
        memset(acc, 0, acc_items * 8);
        double first = NAN, last = NAN; /* max and min age of the valid events */
        for (int f = 0; f < nflag; f++) flast[f] = NAN;
        /* the reference reads events of a user index outside 0..n-1 nowhere; skip them too */
        while (e < m && U[e] < u) e++;
        for (; e < m && U[e] == u; e++) {
            for (int f = 0; f < nflag; f++) {
                double fage = (as_of - ((const double *)flags[f].b.buf)[e]) / DAY;
                if (fage >= 0 && !(fage >= flast[f])) flast[f] = fage; /* np.minimum: the first of equals */
            }
            double age = (as_of - T[e]) / DAY;
            if (!(age >= 0)) continue;
            int b = bucket_of(win, nw, age);
            cnt[b]++;
            if (isnan(first) || age > first) first = age;
            if (isnan(last) || age < last) last = age;
            for (int h = 0; h < nh; h++) dec[h] += exp2(-age / hl[h]);
            for (int f = 0; f < nsum; f++) {
                double x = ((const double *)sums[f].b.buf)[e];
                if (sum_is_flag[f]) x = x <= as_of ? 1.0 : 0.0;
                int present = !isnan(x);
                ssum[f * nb + b] += present ? x : 0.0;
                scnt[f * nb + b] += present ? 1.0 : 0.0;
            }
            if (nlevf) {
                int lb = bucket_of(lw, nlw, age);
                Py_ssize_t base = 0;
                for (int f = 0; f < nlevf; f++) {
                    int code = ((const int16_t *)levels[f].b.buf)[e];
                    if (code >= 0 && code < nlev[f]) lcnt[(base + code) * nlb + lb]++;
                    base += nlev[f];
                }
            }
        }
        /* cumulate over the windows and write this user's values. Counts, days and rates are far inside
         * float32's range; sums and means of a field's values may not be (PUTV: beyond it, missing) */
        Py_ssize_t s = 0;
#define PUT(x) (dst[s++][u] = (float)(x))
#define PUTV(x) (dst[s++][u] = f32(x))
        for (int k = 1; k < nb; k++) cnt[k] += cnt[k - 1];
        PUT((double)cnt[nw]);
        for (int k = 0; k < nw; k++) PUT((double)cnt[k]);
        PUT(first);
        PUT(last);
        for (int k = 0; k < nw; k++) {
            if (rate[k] == 0.0) continue;
            double x = E[u];
            double d = isnan(x) ? NAN : (win[k] < x ? win[k] : (x < win[k] ? x : win[k]));
            PUT((double)cnt[k] / d);
        }
        for (int h = 0; h < nh; h++) PUT(dec[h]);
        for (int f = 0; f < nsum; f++) {
            double *sf = ssum + f * nb, *cf = scnt + f * nb;
            for (int k = 1; k < nb; k++) { sf[k] += sf[k - 1]; cf[k] += cf[k - 1]; }
            for (int k = 0; k < nw; k++) {
                PUTV(sf[k]);
                PUTV(sf[k] / cf[k]);
            }
        }
        for (int f = 0; f < nflag; f++) PUT(flast[f]);
        for (Py_ssize_t l = 0; l < total_levels; l++) {
            int64_t *lc = lcnt + l * nlb;
            for (int k = 1; k < nlb; k++) lc[k] += lc[k - 1];
            for (int k = 0; k < nlw; k++) PUT((double)lc[k]);
        }
#undef PUTV
#undef PUT
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);

done:
    release(&out); release(&rows); release(&uidx); release(&t); release(&expo);
    if (sums) for (int f = 0; f < nsum; f++) release(&sums[f]);
    if (flags) for (int f = 0; f < nflag; f++) release(&flags[f]);
    if (levels) for (int f = 0; f < nlevf; f++) release(&levels[f]);
    PyMem_Free(sums); PyMem_Free(flags); PyMem_Free(levels); PyMem_Free(sum_is_flag); PyMem_Free(nlev);
    PyMem_Free(acc); PyMem_Free(flast); PyMem_Free(dst); PyMem_Free(scratch);
    return result;
}

PyDoc_STRVAR(exposure_days_doc,
"exposure_days(n, as_of, created, events) -> bytearray of float64\n\n"
"Days each of the n users had been around at ``as_of``: since creation or the first event,\n"
"whichever is earlier (times after ``as_of`` ignored), at least 1; NaN when neither is known.\n"
"``events`` is a tuple of (uidx int64 sorted, t float64) per event list.");

static PyObject *exposure_days(PyObject *self, PyObject *args) {
    Py_ssize_t n;
    double as_of;
    PyObject *created_o, *events_o;
    if (!PyArg_ParseTuple(args, "ndOO!", &n, &as_of, &created_o, &PyTuple_Type, &events_o)) return NULL;
    Buf created = {0};
    if (get_buf(created_o, &created, 0, 8, "created") < 0) { release(&created); return NULL; }
    if (created.b.len / 8 != n) {
        release(&created);
        return PyErr_Format(PyExc_ValueError, "created: one value per user");
    }
    PyObject *res = PyByteArray_FromStringAndSize(NULL, n * 8);
    if (!res) { release(&created); return NULL; }
    double *first = (double *)PyByteArray_AS_STRING(res);
    const double *C = created.b.buf;
    for (Py_ssize_t u = 0; u < n; u++) first[u] = C[u] <= as_of ? C[u] : NAN;
    release(&created);
    Py_ssize_t ng = PyTuple_GET_SIZE(events_o);
    for (Py_ssize_t g = 0; g < ng; g++) {
        PyObject *uo, *to;
        Buf ub = {0}, tb = {0};
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(events_o, g), "OO", &uo, &to) ||
            get_buf(uo, &ub, 0, 8, "uidx") < 0 || get_buf(to, &tb, 0, 8, "t") < 0) {
            release(&ub); release(&tb); Py_DECREF(res); return NULL;
        }
        Py_ssize_t m = ub.b.len / 8;
        if (tb.b.len / 8 != m) {
            release(&ub); release(&tb); Py_DECREF(res);
            return PyErr_Format(PyExc_ValueError, "t: one time per event");
        }
        const int64_t *U = ub.b.buf;
        const double *T = tb.b.buf;
        /* np.fmin(first, per-user minimum of the times <= as_of) */
        Py_ssize_t e = 0;
        while (e < m) {
            int64_t u = U[e];
            double lo = NAN;
            for (; e < m && U[e] == u; e++) {
                double x = T[e];
                if (x <= as_of && (isnan(lo) || x < lo)) lo = x;
            }
            if (u >= 0 && u < n && !isnan(lo) && !(first[u] <= lo)) first[u] = lo;
        }
        release(&ub); release(&tb);
    }
    for (Py_ssize_t u = 0; u < n; u++) {
        double d = (as_of - first[u]) / DAY;
        first[u] = isnan(d) ? NAN : (d > 1.0 ? d : 1.0);
    }
    return res;
}

static PyMethodDef methods[] = {
    {"event_features", event_features, METH_VARARGS, event_features_doc},
    {"exposure_days", exposure_days, METH_VARARGS, exposure_days_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef features_module = {
    PyModuleDef_HEAD_INIT, "_features", "Compiled window aggregates of sightlines.features (the numpy code is the reference).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__features(void) { return PyModule_Create(&features_module); }
