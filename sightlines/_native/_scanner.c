/*
 * sightlines._native._scanner: a compiled fast path for decoding a block of
 * profile lines straight into columns.
 *
 * The Python decoder (sightlines/_decode.py + features.chunk_from_users) is the
 * reference. This scanner handles the lines whose every relevant value is
 * plainly regular and computes exactly what the reference computes for them;
 * a line with anything unusual (a wrong shape, an escaped or non-UTF-8 string
 * where a value is read, a numeric string, an unusual time spelling, absurd
 * nesting, invalid JSON, a missing or odd id...) is marked SLOW and the caller
 * sends it through the reference decoder. Being conservative is always safe;
 * accepting a line the reference would read differently is a bug, and the
 * differential tests (tests/test_fastdecode.py) look for exactly that.
 *
 * The plan tree mirrors sightlines._decode._Node: objects with children by
 * key, leaves (any JSON value), "len" lists (only their length matters),
 * "records" lists (one event per object element) and "items" lists inside a
 * record (the per-record item count). Outputs hang on the nodes:
 *   user level:   NUM, TIME, CAT (into a float64 column per user), ID, LEN
 *   record level: NUM, TIME, LEN (into a float64 column per event),
 *                 RCODE (int16 column per event), the items total (QTY).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

enum { K_OBJ = 0, K_LEAF = 1, K_LEN = 2, K_RECORDS = 3, K_ITEMS = 4 };
enum { C_NUM = 0, C_TIME = 1, C_CAT = 2, C_ID = 3, C_LEN = 4, C_RCODE = 5, C_QTY = 6 };
enum { V_STR, V_NUM, V_TRUE, V_FALSE, V_NULL, V_OBJ, V_ARR };
enum { ST_OK = 0, ST_SLOW = 1, ST_BLANK = 2 };

#define MAX_DEPTH 64
#define MAX_LIST 20000
#define MAX_ID 256
#define MAX_ID_DIGITS 18 /* an integer id of more digits is read by the reference */
#define SLOW (-1)
#define TRY(x) do { if ((x) < 0) return SLOW; } while (0)

typedef struct {
    int conv;
    int slot;
    int nlev;
    char **lev;
    Py_ssize_t *levlen;
} Out;

/* The keys of the last object read at a node, in order: objects of one kind (the records of a list, above
 * all) tend to spell their keys identically, so the next object's key at the same position is tried first
 * as raw bytes, quotes included, without scanning it. A key is remembered only once it was read the
 * general way, without escapes: identical raw bytes are then the identical key. */
#define ORDER_KEYS 16
#define ORDER_BYTES 40

typedef struct {
    unsigned char bytes[ORDER_BYTES]; /* "key" with its quotes */
    int len;                          /* 0: nothing remembered at this position */
    struct Node *child;               /* NULL: a key the plan does not read */
} KeyAt;

typedef struct Node {
    int kind;
    int nchild;
    char **keys;
    Py_ssize_t *keylen;
    struct Node **child;
    int nout;
    Out *out;
    int group;      /* K_RECORDS: event group */
    int items_slot; /* K_ITEMS: double slot of the per-record item count, -1 if none */
    uint64_t stamp; /* the object instance that last set this child (repeated keys) */
    KeyAt *order;   /* ORDER_KEYS entries (objects only) */
} Node;

typedef struct { double *p; Py_ssize_t n, cap; } DVec;
typedef struct { int16_t *p; Py_ssize_t n, cap; } SVec;
typedef struct { int64_t *p; Py_ssize_t n, cap; } LVec;

typedef struct {
    int ndbl, ncode;
    LVec uidx;
    DVec *d;
    SVec *c;
} Group;

typedef struct {
    PyObject_HEAD
    Node *root;
    int nucols;
    int ngroups;
    int *group_ndbl;
    int *group_ncode;
    double latest;
    uint64_t instance; /* object instances numbered across scans (repeated-key detection) */
    /* the sizes of the last scan's outputs: the next scan reserves as much up front (no growing copies) */
    Py_ssize_t hint_rows;
    Py_ssize_t *hint_events;
} Scanner;

static uint64_t id_hash(const unsigned char *p, Py_ssize_t n);

/* a string id (no escapes, ASCII) that is taken as it is: not empty, not too long, nothing the reference
 * would strip at its ends (the scanner and leading_ids must agree) */
static inline int plain_id(const unsigned char *s, Py_ssize_t n) {
    return n > 0 && n <= MAX_ID && s[0] > 0x20 && s[n - 1] > 0x20;
}

/* ------------------------------------------------------------------ */
/* growable vectors                                                    */

#define DEFINE_PUSH(NAME, VEC, T)                                  \
    static int NAME(VEC *v, T x) {                                 \
        if (v->n == v->cap) {                                      \
            Py_ssize_t cap = v->cap ? v->cap * 2 : 1024;           \
            T *p = PyMem_Realloc(v->p, cap * sizeof(T));           \
            if (!p) return -2;                                     \
            v->p = p;                                              \
            v->cap = cap;                                          \
        }                                                          \
        v->p[v->n++] = x;                                          \
        return 0;                                                  \
    }
DEFINE_PUSH(dvec_push, DVec, double)
DEFINE_PUSH(lvec_push, LVec, int64_t)

/* room for n items (of size item) in a vector that is still empty */
static int reserve(void **p, Py_ssize_t *cap, Py_ssize_t n, size_t item) {
    if (n <= *cap) return 0;
    void *q = PyMem_Realloc(*p, n * item);
    if (!q) return -2;
    *p = q;
    *cap = n;
    return 0;
}

/* a new event of a group: its user, every value missing (NaN) and every code -1; all the group's vectors
 * have the same length and grow together */
static int group_push(Group *g, Py_ssize_t row) {
    Py_ssize_t n = g->uidx.n;
    if (n == g->uidx.cap) {
        Py_ssize_t cap = n ? n * 2 : 1024;
        int64_t *u = PyMem_Realloc(g->uidx.p, cap * sizeof(int64_t));
        if (!u) return -2;
        g->uidx.p = u;
        for (int k = 0; k < g->ndbl; k++) {
            double *d = PyMem_Realloc(g->d[k].p, cap * sizeof(double));
            if (!d) return -2;
            g->d[k].p = d;
            g->d[k].cap = cap;
        }
        for (int k = 0; k < g->ncode; k++) {
            int16_t *c = PyMem_Realloc(g->c[k].p, cap * sizeof(int16_t));
            if (!c) return -2;
            g->c[k].p = c;
            g->c[k].cap = cap;
        }
        g->uidx.cap = cap; /* last: a failure above leaves the group growable again */
    }
    g->uidx.p[n] = row;
    g->uidx.n = n + 1;
    for (int k = 0; k < g->ndbl; k++) { g->d[k].p[n] = NAN; g->d[k].n = n + 1; }
    for (int k = 0; k < g->ncode; k++) { g->c[k].p[n] = -1; g->c[k].n = n + 1; }
    return 0;
}

/* ------------------------------------------------------------------ */
/* parsing state                                                       */

typedef struct {
    const unsigned char *p, *end;
    int depth;
    uint64_t instance;
    Scanner *sc;
    Py_ssize_t row;
    DVec *ucols;
    Group *groups;
    /* the record being filled (record-level outputs), or -1 */
    Group *grp;
    Py_ssize_t rec;
    /* the item being read inside a record's items list */
    double item_qty;
    int in_item;
    /* the row's id */
    const unsigned char *id;
    Py_ssize_t idlen;
    int has_id;
    int oom;
} P;

typedef struct {
    int t;
    const unsigned char *s;
    Py_ssize_t n;
    int esc;      /* string has backslash escapes */
    int nonascii; /* string has bytes >= 0x80 */
    int isint;    /* number without fraction or exponent */
    int ndig;     /* digits in the number's integer part */
    int neg0;     /* number spelled -0... */
    const unsigned char *numstart;
    Py_ssize_t numlen;
    int has_num;  /* num holds the number's value (it is converted once) */
    double num;
} Val;

#define WS(c) ((c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n')

static inline void skip_ws(P *s) {
    if (s->p < s->end && *s->p > ' ') return; /* compact JSON: the usual case, one comparison */
    while (s->p < s->end && WS(*s->p)) s->p++;
}

static inline int hexd(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* s->p at the opening quote; on return s->p is after the closing quote */
static int scan_string(P *s, Val *v) {
    const unsigned char *p = s->p + 1, *end = s->end;
    int esc = 0, nonascii = 0;
    v->s = p;
    for (;;) {
#if defined(__SSE2__)
        /* 16 bytes at a time up to the next quote, backslash or control character */
        while (end - p >= 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)p);
            __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                                                     _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))),
                                        _mm_cmpeq_epi8(_mm_max_epu8(x, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f)));
            int high = _mm_movemask_epi8(x);
            int m = _mm_movemask_epi8(stop);
            if (m) {
                int k = __builtin_ctz(m);
                if (high & ((1 << k) - 1)) nonascii = 1;
                p += k;
                break;
            }
            if (high) nonascii = 1;
            p += 16;
        }
#endif
        if (p >= end) return SLOW;
        unsigned char c = *p;
        if (c == '"') break;
        if (c == '\\') {
            esc = 1;
            if (p + 1 >= end) return SLOW;
            unsigned char e = p[1];
            if (e == 'u') {
                if (p + 5 >= end || !hexd(p[2]) || !hexd(p[3]) || !hexd(p[4]) || !hexd(p[5])) return SLOW;
                /* a surrogate (paired or not): the reference checks the pairing, even in skipped text */
                if ((p[2] | 0x20) == 'd' && (p[3] >= '8' || (p[3] | 0x20) >= 'a')) return SLOW;
                p += 6;
            } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
                p += 2;
            } else {
                return SLOW;
            }
            continue;
        }
        if (c < 0x20) return SLOW;
        if (c >= 0x80) nonascii = 1;
        p++;
    }
    v->t = V_STR;
    v->n = p - v->s;
    v->esc = esc;
    v->nonascii = nonascii;
    s->p = p + 1;
    return 0;
}

static int scan_number(P *s, Val *v) {
    const unsigned char *p = s->p, *end = s->end, *start = p;
    int ndig = 0, isint = 1, neg0 = 0;
    if (p < end && *p == '-') p++;
    if (p >= end) return SLOW;
    if (*p == '0') {
        if (start != p) neg0 = 1;
        p++;
        ndig = 1;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') { p++; ndig++; }
    } else {
        return SLOW;
    }
    if (p < end && *p == '.') {
        isint = 0;
        p++;
        if (p >= end || !(*p >= '0' && *p <= '9')) return SLOW;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        isint = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || !(*p >= '0' && *p <= '9')) return SLOW;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    v->t = V_NUM;
    v->has_num = 0;
    v->isint = isint;
    v->ndig = ndig;
    v->neg0 = neg0;
    v->numstart = start;
    v->numlen = p - start;
    s->p = p;
    return 0;
}

static int skip_value(P *s);
static int valid_utf8(const unsigned char *p, Py_ssize_t n);

static int skip_container(P *s, unsigned char close) {
    if (++s->depth > MAX_DEPTH) return SLOW;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) { s->p++; s->depth--; return 0; }
    for (;;) {
        if (close == '}') {
            Val k;
            if (s->p >= s->end || *s->p != '"') return SLOW;
            TRY(scan_string(s, &k));
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':') return SLOW;
            s->p++;
            skip_ws(s);
        }
        TRY(skip_value(s));
        skip_ws(s);
        if (s->p >= s->end) return SLOW;
        if (*s->p == ',') { s->p++; skip_ws(s); continue; }
        if (*s->p == close) { s->p++; s->depth--; return 0; }
        return SLOW;
    }
}

static int literal(P *s, const char *word, Py_ssize_t n) {
    if (s->end - s->p < n || memcmp(s->p, word, n) != 0) return SLOW;
    s->p += n;
    return 0;
}

static int skip_value(P *s) {
    if (s->p >= s->end) return SLOW;
    unsigned char c = *s->p;
    Val v;
    switch (c) {
    case '"': return scan_string(s, &v);
    case '{': return skip_container(s, '}');
    case '[': return skip_container(s, ']');
    case 't': return literal(s, "true", 4);
    case 'f': return literal(s, "false", 5);
    case 'n': return literal(s, "null", 4);
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return scan_number(s, &v);
        return SLOW;
    }
}

/* a captured leaf value: scalars are read, containers skipped */
static int read_value(P *s, Val *v) {
    if (s->p >= s->end) return SLOW;
    unsigned char c = *s->p;
    switch (c) {
    case '"': return scan_string(s, v);
    case '{': v->t = V_OBJ; return skip_container(s, '}');
    case '[': v->t = V_ARR; return skip_container(s, ']');
    case 't': v->t = V_TRUE; return literal(s, "true", 4);
    case 'f': v->t = V_FALSE; return literal(s, "false", 5);
    case 'n': v->t = V_NULL; return literal(s, "null", 4);
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return scan_number(s, v);
        return SLOW;
    }
}

/* strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF), as Python decodes it */
static int valid_utf8(const unsigned char *p, Py_ssize_t n) {
    const unsigned char *end = p + n;
    while (p < end) {
        unsigned char c = *p;
        if (c < 0x80) { p++; continue; }
        if (c >= 0xC2 && c <= 0xDF) {
            if (end - p < 2 || (p[1] & 0xC0) != 0x80) return 0;
            p += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (end - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
            if (c == 0xE0 && p[1] < 0xA0) return 0;
            if (c == 0xED && p[1] > 0x9F) return 0;
            p += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (end - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
            if (c == 0xF0 && p[1] < 0x90) return 0;
            if (c == 0xF4 && p[1] > 0x8F) return 0;
            p += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

/* a plain string as Python would see it: no escapes (leaf strings were checked for UTF-8 when read) */
static int plain_string(const Val *v) {
    return !v->esc;
}

static const double POW10[23] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* the number as a double, exactly as Python's float() reads it; SLOW when out of the plain range */
static int number_value(const Val *v, double *out) {
    /* Clinger's fast path: at most 15 significant digits and a power of ten up to 22 are exact
     * doubles, so one division (or the integer itself) is the correctly rounded value */
    const unsigned char *p = v->numstart, *e = p + v->numlen;
    int neg = 0, digits = 0, frac = 0, dot = 0;
    uint64_t m = 0;
    if (*p == '-') { neg = 1; p++; }
    for (; p < e; p++) {
        unsigned char c = *p;
        if (c >= '0' && c <= '9') {
            if (m || c != '0') digits++;
            m = m * 10 + (c - '0');
            if (dot) frac++;
            if (digits > 15) break;
        } else if (c == '.') {
            dot = 1;
        } else {
            break;
        }
    }
    if (p == e && digits <= 15 && frac <= 22) {
        if (v->isint && v->ndig > 15) return SLOW;
        double x = frac ? (double)m / POW10[frac] : (double)m;
        /* an integer -0 is Python's int 0, i.e. 0.0; a float -0.0 keeps its sign */
        *out = neg && !(v->isint && m == 0) ? -x : x;
        return 0;
    }
    char buf[64];
    if (v->numlen >= (Py_ssize_t)sizeof(buf)) return SLOW;
    if (v->isint && v->ndig > 15) return SLOW;
    memcpy(buf, v->numstart, v->numlen);
    buf[v->numlen] = 0;
    char *endp = NULL;
    double x = PyOS_string_to_double(buf, &endp, NULL);
    if (x == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return SLOW; }
    if (endp != buf + v->numlen || !isfinite(x)) return SLOW;
    *out = x;
    return 0;
}

/* number_value, remembered in the value (a leaf's number is checked, then converted) */
static inline int num_of(Val *v, double *out) {
    if (!v->has_num) {
        TRY(number_value(v, &v->num));
        v->has_num = 1;
    }
    *out = v->num;
    return 0;
}

static const int16_t MDAYS[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
/* days before each month (1..12) of a common year */
static const int16_t MSTART[13] = {0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
/* days from 1970-01-01 to January 1st of 1900 + i (filled at import); other years are computed */
#define YEAR0 1900
#define NYEARS 300
static int32_t YEAR_DAYS[NYEARS];

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t mp = (m + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

#define DIG(c) ((unsigned)((c) - '0') <= 9)

/* The spellings the reference parses with plain integer arithmetic (sightlines/_timeparse.py,
 * _parse_common): "YYYY-MM-DD[T ]HH:MM:SS" followed by nothing (UTC), "Z", ".mmmZ" or "+HH:MM" /
 * "-HH:MM". Anything else (other fractions, odd ranges) is left to the reference parser. */
/* every byte of w is an ASCII digit (simdjson's test: a digit's high nibble is 3, and adding 6 keeps it so) */
static inline int eight_digits(uint64_t w) {
    return ((w & 0xF0F0F0F0F0F0F0F0ULL) | (((w + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4)) ==
           0x3333333333333333ULL;
}

static int iso_time(const unsigned char *s, Py_ssize_t n, double *out) {
    if (n < 19) return SLOW;
    /* "YYYY-MM-" "DDTHH:MM" ":SS": the separators checked, then replaced by '0' to test all digits at once */
    uint64_t w0, w1, w2 = 0;
    memcpy(&w0, s, 8);
    memcpy(&w1, s + 8, 8);
    memcpy(&w2, s + 16, 3);
    const uint64_t SEP0 = 0xFF0000FF00000000ULL, SEP1 = 0x0000FF0000FF0000ULL; /* bytes 4, 7 / 2, 5 */
    if ((w0 & SEP0) != 0x2D00002D00000000ULL || (w1 & 0x0000FF0000000000ULL) != 0x00003A0000000000ULL ||
        (s[10] != 'T' && s[10] != ' ') || s[16] != ':')
        return SLOW;
    if (!eight_digits((w0 & ~SEP0) | 0x3000003000000000ULL) || !eight_digits((w1 & ~SEP1) | 0x0000300000300000ULL) ||
        !eight_digits((w2 & 0xFFFF00ULL) | 0x3030303030000030ULL))
        return SLOW;
    unsigned d0 = s[0] - '0', d1 = s[1] - '0', d2 = s[2] - '0', d3 = s[3] - '0', d5 = s[5] - '0', d6 = s[6] - '0';
    unsigned d8 = s[8] - '0', d9 = s[9] - '0', d11 = s[11] - '0', d12 = s[12] - '0', d14 = s[14] - '0';
    unsigned d15 = s[15] - '0', d17 = s[17] - '0', d18 = s[18] - '0';
    int year = d0 * 1000 + d1 * 100 + d2 * 10 + d3;
    int month = d5 * 10 + d6;
    int day = d8 * 10 + d9;
    int hour = d11 * 10 + d12;
    int minute = d14 * 10 + d15;
    int sec = d17 * 10 + d18;
    if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59) return SLOW;
    int leap = (year % 4 == 0) && (year % 100 != 0 || year % 400 == 0);
    int md = MDAYS[month] - (month == 2 && !leap);
    if (day > md) return SLOW;
    int64_t days = (year >= YEAR0 && year < YEAR0 + NYEARS)
                       ? YEAR_DAYS[year - YEAR0] + MSTART[month] + (month > 2 && leap) + day - 1
                       : days_from_civil(year, month, day);
    int64_t secs = days * 86400 + hour * 3600 + minute * 60 + sec;
    if (n == 19 || (n == 20 && s[19] == 'Z')) {
        *out = (double)secs;
        return 0;
    }
    if (n == 24 && s[19] == '.' && DIG(s[20]) && DIG(s[21]) && DIG(s[22]) && s[23] == 'Z') {
        int ms = (s[20] - '0') * 100 + (s[21] - '0') * 10 + (s[22] - '0');
        *out = (double)secs + (double)ms / 1000.0;
        return 0;
    }
    if (n == 25 && (s[19] == '+' || s[19] == '-') && DIG(s[20]) && DIG(s[21]) && s[22] == ':' && DIG(s[23]) &&
        DIG(s[24])) {
        int oh = (s[20] - '0') * 10 + (s[21] - '0'), om = (s[23] - '0') * 10 + (s[24] - '0');
        if (oh > 23 || om > 59) return SLOW;
        int64_t off = (int64_t)oh * 3600 + om * 60;
        *out = (double)(s[19] == '+' ? secs - off : secs + off);
        return 0;
    }
    return SLOW;
}

static int conv_time(P *s, Val *v, double *out) {
    double x = NAN;
    switch (v->t) {
    case V_STR:
        if (v->esc) return SLOW;
        TRY(iso_time(v->s, v->n, &x));
        break;
    case V_NUM:
        TRY(num_of(v, &x));
        if (!(x > -1e18 && x < 1e18)) x = NAN;
        break;
    default: /* null, booleans, objects, arrays: missing */
        x = NAN;
    }
    if (!(x >= 0) || x > s->sc->latest) x = NAN;
    *out = x;
    return 0;
}

static int conv_num(Val *v, double *out) {
    switch (v->t) {
    case V_NUM: return num_of(v, out);
    case V_TRUE: *out = 1.0; return 0;
    case V_FALSE: *out = 0.0; return 0;
    case V_STR: return SLOW; /* numeric strings: the reference reads them */
    default: *out = NAN; return 0;
    }
}

static inline int same_bytes(const unsigned char *a, const unsigned char *b, Py_ssize_t n);

static int level_of(const Out *o, const Val *v) {
    for (int i = 0; i < o->nlev; i++)
        if (o->levlen[i] == v->n && same_bytes((const unsigned char *)o->lev[i], v->s, v->n)) return i;
    return -1;
}

static int apply_user_leaf(P *s, Node *nd, Val *v) {
    for (int k = 0; k < nd->nout; k++) {
        Out *o = &nd->out[k];
        double x;
        switch (o->conv) {
        case C_NUM:
        case C_TIME:
            TRY(o->conv == C_NUM ? conv_num(v, &x) : conv_time(s, v, &x));
            s->ucols[o->slot].p[s->row] = x;
            break;
        case C_CAT:
            if (v->t == V_STR) {
                if (!plain_string(v)) return SLOW;
                int i = level_of(o, v);
                x = i < 0 ? (double)o->nlev : (double)i;
            } else if (v->t == V_NULL || v->t == V_OBJ || v->t == V_ARR) {
                x = NAN;
            } else {
                return SLOW; /* numbers and booleans can match spelled-out levels: the reference decides */
            }
            s->ucols[o->slot].p[s->row] = x;
            break;
        case C_ID:
            if (v->t == V_STR) {
                if (v->esc || v->nonascii || !plain_id(v->s, v->n)) return SLOW;
                s->id = v->s; s->idlen = v->n;
            } else if (v->t == V_NUM && v->isint && !v->neg0 && v->ndig <= MAX_ID_DIGITS) {
                s->id = v->numstart; s->idlen = v->numlen;
            } else {
                return SLOW;
            }
            s->has_id = 1;
            break;
        default:
            return SLOW;
        }
    }
    return 0;
}

static int apply_record_leaf(P *s, Node *nd, Val *v) {
    Group *g = s->grp;
    for (int k = 0; k < nd->nout; k++) {
        Out *o = &nd->out[k];
        double x;
        switch (o->conv) {
        case C_NUM:
        case C_TIME:
            TRY(o->conv == C_NUM ? conv_num(v, &x) : conv_time(s, v, &x));
            g->d[o->slot].p[s->rec] = x;
            break;
        case C_RCODE:
            if (v->t == V_STR) {
                if (!plain_string(v)) return SLOW;
                g->c[o->slot].p[s->rec] = (int16_t)level_of(o, v);
            } /* anything but a string: -1, the default */
            break;
        case C_QTY:
            if (!s->in_item) return SLOW;
            TRY(conv_num(v, &x));
            s->item_qty = x;
            break;
        default:
            return SLOW;
        }
    }
    return 0;
}

static int parse_object(P *s, Node *nd, int level);

/* an array: count its elements; for records/items parse each object element */
static int parse_array(P *s, Node *nd, Py_ssize_t *count, double *items_total) {
    Py_ssize_t n = 0;
    double total = 0.0;
    if (++s->depth > MAX_DEPTH) return SLOW;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        s->depth--;
        *count = 0;
        if (items_total) *items_total = 0.0;
        return 0;
    }
    for (;;) {
        if (nd->kind == K_RECORDS) {
            if (s->p >= s->end || *s->p != '{') return SLOW;
            Group *g = &s->groups[nd->group];
            if (group_push(g, s->row) < 0) { s->oom = 1; return SLOW; }
            s->grp = g;
            s->rec = g->uidx.n - 1;
            TRY(parse_object(s, nd, 1));
            s->grp = NULL;
        } else if (nd->kind == K_ITEMS) {
            if (s->p >= s->end || *s->p != '{') return SLOW;
            s->in_item = 1;
            s->item_qty = NAN;
            TRY(parse_object(s, nd, 2));
            s->in_item = 0;
            double q = s->item_qty;
            if (isnan(q) || q < 0 || q > 10000) q = 1.0;
            total += q;
        } else {
            TRY(skip_value(s));
        }
        n++;
        if (n > MAX_LIST) return SLOW;
        skip_ws(s);
        if (s->p >= s->end) return SLOW;
        if (*s->p == ',') { s->p++; skip_ws(s); continue; }
        if (*s->p == ']') { s->p++; break; }
        return SLOW;
    }
    s->depth--;
    *count = n;
    if (items_total) *items_total = total;
    return 0;
}

/* A time in one of the common spellings, read straight from the text: s->p at its opening quote. iso_time
 * checks every byte of the spelling it accepts (digits and separators only), so the quote right after it
 * ends the string: no escape, control or non-ASCII character can be inside. Returns 1 if it was one (the
 * value is stored, as apply_*_leaf would), 0 to read it the general way. */
static inline int quick_time(P *s, const Out *o, int level) {
    static const int LENGTHS[4] = {20, 25, 19, 24}; /* ...SSZ, ...SS+HH:MM, ...SS, ...SS.mmmZ */
    for (int i = 0; i < 4; i++) {
        Py_ssize_t L = LENGTHS[i];
        if (s->end - s->p < L + 2 || s->p[L + 1] != '"') continue;
        double x;
        if (iso_time(s->p + 1, L, &x) < 0) return 0;
        if (!(x >= 0) || x > s->sc->latest) x = NAN;
        if (level == 0) s->ucols[o->slot].p[s->row] = x;
        else s->grp->d[o->slot].p[s->rec] = x;
        s->p += L + 2;
        return 1;
    }
    return 0;
}

/* the value of a known key; level 0 = user, 1 = record, 2 = item */
static int parse_member(P *s, Node *ch, int level) {
    unsigned char c = s->p < s->end ? *s->p : 0;
    switch (ch->kind) {
    case K_OBJ:
        if (c != '{') return SLOW; /* the reference refuses a non-object here */
        return parse_object(s, ch, level);
    case K_LEAF: {
        /* the reference decodes a leaf fully: it refuses invalid UTF-8 and out-of-range numbers there */
        Val v;
        double x;
        if (c == '"' && ch->nout == 1 && ch->out[0].conv == C_TIME && level <= 1 && quick_time(s, &ch->out[0], level))
            return 0;
        TRY(read_value(s, &v));
        if (v.t == V_OBJ || v.t == V_ARR) return SLOW; /* a container where a value belongs: the reference decides */
        if (v.t == V_STR && v.nonascii && !valid_utf8(v.s, v.n)) return SLOW;
        if (v.t == V_NUM && v.isint && v.ndig > 18) return SLOW; /* msgspec refuses very long integers */
        if (v.t == V_NUM && !v.isint) TRY(num_of(&v, &x));
        return level == 0 ? apply_user_leaf(s, ch, &v) : apply_record_leaf(s, ch, &v);
    }
    case K_LEN:
    case K_RECORDS:
    case K_ITEMS: {
        Py_ssize_t count = 0;
        double total = NAN;
        int is_null = 0;
        if (c == 'n') {
            TRY(literal(s, "null", 4));
            is_null = 1;
        } else if (c == '[') {
            if (ch->kind == K_RECORDS && level != 0) return SLOW;
            if (ch->kind == K_ITEMS && level != 1) return SLOW;
            Group *saved = s->grp;
            Py_ssize_t saved_rec = s->rec;
            TRY(parse_array(s, ch, &count, ch->kind == K_ITEMS ? &total : NULL));
            s->grp = saved;
            s->rec = saved_rec;
        } else {
            return SLOW; /* the reference refuses a non-list here */
        }
        for (int k = 0; k < ch->nout; k++) {
            Out *o = &ch->out[k];
            if (o->conv != C_LEN) return SLOW;
            double x = is_null ? NAN : (double)count;
            if (level == 0) s->ucols[o->slot].p[s->row] = x;
            else if (level == 1) s->grp->d[o->slot].p[s->rec] = x;
            else return SLOW;
        }
        if (ch->kind == K_ITEMS && ch->items_slot >= 0) {
            if (level != 1) return SLOW;
            s->grp->d[ch->items_slot].p[s->rec] = is_null ? NAN : total;
        }
        return 0;
    }
    }
    return SLOW;
}

/* a[0..n) == b[0..n), reading nothing outside them (short keys: two overlapping loads) */
static inline int same_bytes(const unsigned char *a, const unsigned char *b, Py_ssize_t n) {
    uint64_t x, y;
    uint32_t u, v;
    if (n >= 8) {
        while (n > 8) {
            memcpy(&x, a, 8); memcpy(&y, b, 8);
            if (x != y) return 0;
            a += 8; b += 8; n -= 8;
        }
        memcpy(&x, a + n - 8, 8); memcpy(&y, b + n - 8, 8);
        return x == y;
    }
    if (n >= 4) {
        memcpy(&u, a, 4); memcpy(&v, b, 4);
        if (u != v) return 0;
        memcpy(&u, a + n - 4, 4); memcpy(&v, b + n - 4, 4);
        return u == v;
    }
    for (Py_ssize_t i = 0; i < n; i++) if (a[i] != b[i]) return 0;
    return 1;
}

static int parse_object(P *s, Node *nd, int level) {
    uint64_t inst = ++s->instance;
    if (++s->depth > MAX_DEPTH) return SLOW;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') { s->p++; s->depth--; return 0; }
    for (int pos = 0;; pos++) {
        Node *ch = NULL;
        KeyAt *at = pos < ORDER_KEYS && nd->order ? &nd->order[pos] : NULL;
        if (at && at->len && s->end - s->p >= at->len && same_bytes(s->p, at->bytes, at->len)) {
            ch = at->child; /* the key the last object had here, byte for byte (with its colon, if it followed) */
            s->p += at->len;
            if (at->bytes[at->len - 1] != ':') {
                skip_ws(s);
                if (s->p >= s->end || *s->p != ':') return SLOW;
                s->p++;
            }
        } else {
            Val k;
            if (s->p >= s->end || *s->p != '"') return SLOW;
            const unsigned char *start = s->p;
            TRY(scan_string(s, &k));
            if (k.esc) return SLOW; /* an escaped key may spell a known one */
            for (int i = 0; i < nd->nchild; i++) {
                if (nd->keylen[i] == k.n && (k.n == 0 || nd->keys[i][0] == k.s[0]) &&
                    same_bytes((const unsigned char *)nd->keys[i], k.s, k.n)) {
                    ch = nd->child[i];
                    break;
                }
            }
            int colon = s->p < s->end && *s->p == ':'; /* compact JSON: remembered with the key */
            if (at && s->p - start + colon <= ORDER_BYTES) {
                at->len = (int)(s->p - start) + colon;
                memcpy(at->bytes, start, at->len);
                at->child = ch;
            }
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':') return SLOW;
            s->p++;
        }
        skip_ws(s);
        if (ch) {
            if (ch->stamp == inst) return SLOW; /* a repeated key: the reference keeps the last */
            ch->stamp = inst;
            TRY(parse_member(s, ch, level));
        } else {
            TRY(skip_value(s));
        }
        skip_ws(s);
        if (s->p >= s->end) return SLOW;
        if (*s->p == ',') { s->p++; skip_ws(s); continue; }
        if (*s->p == '}') { s->p++; break; }
        return SLOW;
    }
    s->depth--;
    return 0;
}

/* ------------------------------------------------------------------ */
/* the plan: built from nested tuples                                  */
/*   node = (kind, ((key: bytes, node), ...), ((conv, slot, (level: bytes, ...)), ...), group, items_slot) */

static void free_node(Node *nd) {
    if (!nd) return;
    for (int i = 0; i < nd->nchild; i++) {
        PyMem_Free(nd->keys[i]);
        free_node(nd->child[i]);
    }
    PyMem_Free(nd->keys);
    PyMem_Free(nd->keylen);
    PyMem_Free(nd->child);
    for (int k = 0; k < nd->nout; k++) {
        for (int i = 0; i < nd->out[k].nlev; i++) PyMem_Free(nd->out[k].lev[i]);
        PyMem_Free(nd->out[k].lev);
        PyMem_Free(nd->out[k].levlen);
    }
    PyMem_Free(nd->out);
    PyMem_Free(nd->order);
    PyMem_Free(nd);
}

static char *copy_bytes(PyObject *b, Py_ssize_t *len) {
    char *src;
    if (PyBytes_AsStringAndSize(b, &src, len) < 0) return NULL;
    char *dst = PyMem_Malloc(*len + 1);
    if (!dst) { PyErr_NoMemory(); return NULL; }
    memcpy(dst, src, *len);
    dst[*len] = 0;
    return dst;
}

static Node *build_node(PyObject *spec) {
    PyObject *children, *outs;
    int kind, group, items_slot;
    if (!PyArg_ParseTuple(spec, "iO!O!ii", &kind, &PyTuple_Type, &children, &PyTuple_Type, &outs, &group, &items_slot))
        return NULL;
    Node *nd = PyMem_Calloc(1, sizeof(Node));
    if (!nd) { PyErr_NoMemory(); return NULL; }
    nd->kind = kind;
    nd->group = group;
    nd->items_slot = items_slot;
    /* objects keep the order of their keys; so do lists of objects (their elements are parsed at the list's node) */
    if (kind == K_OBJ || kind == K_RECORDS || kind == K_ITEMS) {
        nd->order = PyMem_Calloc(ORDER_KEYS, sizeof(KeyAt));
        if (!nd->order) { PyErr_NoMemory(); PyMem_Free(nd); return NULL; }
    }
    Py_ssize_t nc = PyTuple_GET_SIZE(children);
    nd->keys = PyMem_Calloc(nc ? nc : 1, sizeof(char *));
    nd->keylen = PyMem_Calloc(nc ? nc : 1, sizeof(Py_ssize_t));
    nd->child = PyMem_Calloc(nc ? nc : 1, sizeof(Node *));
    if (!nd->keys || !nd->keylen || !nd->child) { PyErr_NoMemory(); free_node(nd); return NULL; }
    for (Py_ssize_t i = 0; i < nc; i++) {
        PyObject *key, *sub;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(children, i), "O!O!", &PyBytes_Type, &key, &PyTuple_Type, &sub)) {
            free_node(nd); return NULL;
        }
        nd->nchild = (int)i + 1;
        if (!(nd->keys[i] = copy_bytes(key, &nd->keylen[i]))) { free_node(nd); return NULL; }
        if (!(nd->child[i] = build_node(sub))) { free_node(nd); return NULL; }
    }
    Py_ssize_t no = PyTuple_GET_SIZE(outs);
    nd->out = PyMem_Calloc(no ? no : 1, sizeof(Out));
    if (!nd->out) { PyErr_NoMemory(); free_node(nd); return NULL; }
    for (Py_ssize_t k = 0; k < no; k++) {
        PyObject *levels;
        Out *o = &nd->out[k];
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(outs, k), "iiO!", &o->conv, &o->slot, &PyTuple_Type, &levels)) {
            free_node(nd); return NULL;
        }
        nd->nout = (int)k + 1;
        Py_ssize_t nl = PyTuple_GET_SIZE(levels);
        o->lev = PyMem_Calloc(nl ? nl : 1, sizeof(char *));
        o->levlen = PyMem_Calloc(nl ? nl : 1, sizeof(Py_ssize_t));
        if (!o->lev || !o->levlen) { PyErr_NoMemory(); free_node(nd); return NULL; }
        for (Py_ssize_t i = 0; i < nl; i++) {
            PyObject *lev = PyTuple_GET_ITEM(levels, i);
            if (!PyBytes_Check(lev)) { PyErr_SetString(PyExc_TypeError, "levels must be bytes"); free_node(nd); return NULL; }
            o->nlev = (int)i + 1;
            if (!(o->lev[i] = copy_bytes(lev, &o->levlen[i]))) { free_node(nd); return NULL; }
        }
    }
    return nd;
}

static int bad_plan(const char *what) {
    PyErr_Format(PyExc_ValueError, "Scanner: %s", what);
    return -1;
}

/* every slot, group and items slot of the tree within the columns the scanner allocates */
static int check_node(const Node *nd, int nucols, int ngroups, const int *ndbl, const int *ncode, int group) {
    if (nd->kind < K_OBJ || nd->kind > K_ITEMS) return bad_plan("unknown node kind");
    int inner = group;
    if (nd->kind == K_RECORDS) {
        if (group >= 0) return bad_plan("an event list inside an event list");
        if (nd->group < 0 || nd->group >= ngroups) return bad_plan("event list group out of range");
        inner = nd->group;
    }
    if (nd->items_slot >= 0 && (nd->kind != K_ITEMS || group < 0 || nd->items_slot >= ndbl[group]))
        return bad_plan("items slot out of range");
    for (int k = 0; k < nd->nout; k++) {
        const Out *o = &nd->out[k];
        switch (o->conv) {
        case C_ID:
        case C_QTY:
            break;
        case C_RCODE:
            if (group < 0 || o->slot < 0 || o->slot >= ncode[group]) return bad_plan("code slot out of range");
            break;
        case C_NUM:
        case C_TIME:
        case C_CAT:
        case C_LEN:
            if (o->slot < 0 || o->slot >= (group < 0 ? nucols : ndbl[group])) return bad_plan("slot out of range");
            break;
        default:
            return bad_plan("unknown conversion");
        }
    }
    for (int i = 0; i < nd->nchild; i++)
        if (check_node(nd->child[i], nucols, ngroups, ndbl, ncode, inner) < 0) return -1;
    return 0;
}

static int Scanner_init(Scanner *self, PyObject *args, PyObject *kwds) {
    PyObject *tree, *groups;
    int nucols;
    double latest;
    static char *kwlist[] = {"tree", "n_user_columns", "groups", "latest", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!iO!d", kwlist, &PyTuple_Type, &tree, &nucols, &PyTuple_Type,
                                     &groups, &latest))
        return -1;
    if (nucols < 0) return bad_plan("negative column count");
    /* the new plan is built and checked whole before it replaces the old one */
    int ngroups = (int)PyTuple_GET_SIZE(groups);
    int *ndbl = PyMem_Calloc(ngroups ? ngroups : 1, sizeof(int));
    int *ncode = PyMem_Calloc(ngroups ? ngroups : 1, sizeof(int));
    Node *root = NULL;
    if (!ndbl || !ncode) { PyErr_NoMemory(); goto fail; }
    for (int g = 0; g < ngroups; g++) {
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(groups, g), "ii", &ndbl[g], &ncode[g])) goto fail;
        if (ndbl[g] < 1 || ncode[g] < 0) { bad_plan("an event list needs its time column"); goto fail; }
    }
    root = build_node(tree);
    if (!root || check_node(root, nucols, ngroups, ndbl, ncode, -1) < 0) goto fail;
    free_node(self->root);
    PyMem_Free(self->group_ndbl);
    PyMem_Free(self->group_ncode);
    PyMem_Free(self->hint_events);
    self->hint_events = PyMem_Calloc(ngroups ? ngroups : 1, sizeof(Py_ssize_t));
    self->hint_rows = 0;
    self->root = root;
    self->ngroups = ngroups;
    self->group_ndbl = ndbl;
    self->group_ncode = ncode;
    self->nucols = nucols;
    self->latest = latest;
    return 0;
fail:
    free_node(root);
    PyMem_Free(ndbl);
    PyMem_Free(ncode);
    return -1;
}

static void Scanner_dealloc(Scanner *self) {
    free_node(self->root);
    PyMem_Free(self->hint_events);
    PyMem_Free(self->group_ndbl);
    PyMem_Free(self->group_ncode);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ------------------------------------------------------------------ */
/* scanning a block                                                    */

/* a bytearray (writable: numpy views of it can be patched in place) */
static PyObject *bytes_of(const void *p, Py_ssize_t n) {
    return PyByteArray_FromStringAndSize(n ? (const char *)p : "", n);
}

static int is_blank(const unsigned char *p, const unsigned char *end) {
    /* bytes.strip() whitespace: space, \t, \n, \r, \x0b, \x0c */
    for (; p < end; p++) {
        unsigned char c = *p;
        if (!(c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x0b || c == 0x0c)) return 0;
    }
    return 1;
}

PyDoc_STRVAR(scan_doc,
"scan(buffer) -> (status, slow, ids, user_columns, groups, bounds, hashes)\n\n"
"Decode the newline-separated profile lines of ``buffer``. ``status`` has one byte per line\n"
"(0 decoded, 1 slow: decode with the reference decoder, 2 blank); ``slow`` lists\n"
"``(row, start, end)`` of the slow lines; rows are the non-blank lines. ``ids`` has the id of\n"
"every decoded row (None for slow ones); ``user_columns`` are float64 buffers, one value per\n"
"row; ``groups`` has ``(uidx, float64 buffers, int16 buffers)`` per event list; ``bounds``\n"
"holds the start and end offset of each row's line (int64 pairs); ``hashes`` the uint64 hash of\n"
"each decoded row's id (as ``hash_ids``; 0 for slow rows).");

static PyObject *Scanner_scan(Scanner *self, PyObject *arg) {
    if (!self->root) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner: not initialised");
        return NULL;
    }
    Py_buffer buf;
    if (PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) < 0) return NULL;
    const unsigned char *data = buf.buf, *end = data + buf.len;
    PyObject *result = NULL, *status = NULL, *slow = NULL, *ids = NULL, *ucols_out = NULL, *groups_out = NULL;
    DVec *ucols = PyMem_Calloc(self->nucols ? self->nucols : 1, sizeof(DVec));
    Group *groups = PyMem_Calloc(self->ngroups ? self->ngroups : 1, sizeof(Group));
    char *st = NULL;
    LVec bounds = {0}, hashes = {0};
    P s;
    memset(&s, 0, sizeof(s));
    /* each group's event count at the start of the current row (to roll a slow row back) */
    Py_ssize_t *marks = PyMem_Malloc((self->ngroups ? self->ngroups : 1) * sizeof(Py_ssize_t));
    Py_ssize_t nlines = 0, cap_lines = 4096, row = 0;
    if (!ucols || !groups || !marks) { PyErr_NoMemory(); goto done; }
    for (int g = 0; g < self->ngroups; g++) {
        groups[g].ndbl = self->group_ndbl[g];
        groups[g].ncode = self->group_ncode[g];
        groups[g].d = PyMem_Calloc(groups[g].ndbl ? groups[g].ndbl : 1, sizeof(DVec));
        groups[g].c = PyMem_Calloc(groups[g].ncode ? groups[g].ncode : 1, sizeof(SVec));
        if (!groups[g].d || !groups[g].c) { PyErr_NoMemory(); goto done; }
        Py_ssize_t want = self->hint_events ? self->hint_events[g] + self->hint_events[g] / 4 : 0;
        if (want) {
            Group *gr = &groups[g];
            int bad = reserve((void **)&gr->uidx.p, &gr->uidx.cap, want, sizeof(int64_t)) < 0;
            for (int k = 0; k < gr->ndbl && !bad; k++) bad = reserve((void **)&gr->d[k].p, &gr->d[k].cap, want, sizeof(double)) < 0;
            for (int k = 0; k < gr->ncode && !bad; k++) bad = reserve((void **)&gr->c[k].p, &gr->c[k].cap, want, sizeof(int16_t)) < 0;
            if (bad) { PyErr_NoMemory(); goto done; }
        }
    }
    if (self->hint_rows) {
        Py_ssize_t want = self->hint_rows + self->hint_rows / 4;
        int bad = reserve((void **)&bounds.p, &bounds.cap, 2 * want, sizeof(int64_t)) < 0 ||
                  reserve((void **)&hashes.p, &hashes.cap, want, sizeof(int64_t)) < 0;
        for (int k = 0; k < self->nucols && !bad; k++) bad = reserve((void **)&ucols[k].p, &ucols[k].cap, want, sizeof(double)) < 0;
        if (bad) { PyErr_NoMemory(); goto done; }
    }
    st = PyMem_Malloc(cap_lines);
    slow = PyList_New(0);
    ids = PyList_New(0);
    if (!st || !slow || !ids) { PyErr_NoMemory(); goto done; }

    s.sc = self;
    s.instance = self->instance;
    s.ucols = ucols;
    s.groups = groups;
    const unsigned char *line = data;
    while (line < end) {
        const unsigned char *nl = memchr(line, '\n', end - line);
        const unsigned char *lend = nl ? nl : end;
        const unsigned char *p = line;
        if (nlines == cap_lines) {
            cap_lines *= 2;
            char *n2 = PyMem_Realloc(st, cap_lines);
            if (!n2) { PyErr_NoMemory(); goto done; }
            st = n2;
        }
        if (lend - p >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) p += 3;
        if (is_blank(p, lend)) {
            st[nlines++] = ST_BLANK;
        } else {
            /* a new row: every user-level column starts missing */
            if (lvec_push(&bounds, line - data) < 0 || lvec_push(&bounds, lend - data) < 0) { PyErr_NoMemory(); goto done; }
            for (int k = 0; k < self->nucols; k++) {
                if (dvec_push(&ucols[k], NAN) < 0) { PyErr_NoMemory(); goto done; }
            }
            for (int g = 0; g < self->ngroups; g++) marks[g] = groups[g].uidx.n;
            s.p = p;
            s.end = lend;
            s.depth = 0;
            s.row = row;
            s.grp = NULL;
            s.in_item = 0;
            s.has_id = 0;
            s.oom = 0;
            int rc = SLOW;
            skip_ws(&s);
            if (s.p < s.end && *s.p == '{') {
                rc = parse_object(&s, self->root, 0);
                if (rc == 0) {
                    skip_ws(&s);
                    if (s.p != s.end || !s.has_id) rc = SLOW;
                }
            }
            if (s.oom) {
                PyErr_NoMemory();
                goto done;
            }
            PyObject *id;
            if (rc == 0) {
                id = PyUnicode_DecodeASCII((const char *)s.id, s.idlen, NULL);
                st[nlines] = ST_OK;
                if (lvec_push(&hashes, (int64_t)id_hash(s.id, s.idlen)) < 0) { Py_XDECREF(id); PyErr_NoMemory(); goto done; }
            } else {
                /* roll back this row's events and values: the reference decoder reads the line */
                for (int g = 0; g < self->ngroups; g++) {
                    Py_ssize_t m = marks[g];
                    groups[g].uidx.n = m;
                    for (int k = 0; k < groups[g].ndbl; k++) groups[g].d[k].n = m;
                    for (int k = 0; k < groups[g].ncode; k++) groups[g].c[k].n = m;
                }
                for (int k = 0; k < self->nucols; k++) ucols[k].p[row] = NAN;
                id = Py_NewRef(Py_None);
                st[nlines] = ST_SLOW;
                if (lvec_push(&hashes, 0) < 0) { Py_DECREF(id); PyErr_NoMemory(); goto done; }
                PyObject *t = Py_BuildValue("(nnn)", row, (Py_ssize_t)(line - data), (Py_ssize_t)(lend - data));
                if (!t || PyList_Append(slow, t) < 0) { Py_XDECREF(t); Py_XDECREF(id); goto done; }
                Py_DECREF(t);
            }
            if (!id || PyList_Append(ids, id) < 0) { Py_XDECREF(id); goto done; }
            Py_DECREF(id);
            nlines++;
            row++;
        }
        if (!nl) break;
        line = nl + 1;
    }

    status = PyBytes_FromStringAndSize(nlines ? st : "", nlines);
    ucols_out = PyTuple_New(self->nucols);
    groups_out = PyTuple_New(self->ngroups);
    if (!status || !ucols_out || !groups_out) goto done;
    for (int k = 0; k < self->nucols; k++) {
        PyObject *b = bytes_of(ucols[k].p, row * (Py_ssize_t)sizeof(double));
        if (!b) goto done;
        PyTuple_SET_ITEM(ucols_out, k, b);
    }
    for (int g = 0; g < self->ngroups; g++) {
        Group *gr = &groups[g];
        PyObject *d = PyTuple_New(gr->ndbl), *c = PyTuple_New(gr->ncode);
        PyObject *u = bytes_of(gr->uidx.p, gr->uidx.n * (Py_ssize_t)sizeof(int64_t));
        if (!d || !c || !u) { Py_XDECREF(d); Py_XDECREF(c); Py_XDECREF(u); goto done; }
        int failed = 0;
        for (int k = 0; k < gr->ndbl && !failed; k++) {
            PyObject *b = bytes_of(gr->d[k].p, gr->uidx.n * (Py_ssize_t)sizeof(double));
            if (!b) failed = 1; else PyTuple_SET_ITEM(d, k, b);
        }
        for (int k = 0; k < gr->ncode && !failed; k++) {
            PyObject *b = bytes_of(gr->c[k].p, gr->uidx.n * (Py_ssize_t)sizeof(int16_t));
            if (!b) failed = 1; else PyTuple_SET_ITEM(c, k, b);
        }
        if (failed) { Py_DECREF(d); Py_DECREF(c); Py_DECREF(u); goto done; }
        PyObject *t = PyTuple_Pack(3, u, d, c);
        Py_DECREF(u); Py_DECREF(d); Py_DECREF(c);
        if (!t) goto done;
        PyTuple_SET_ITEM(groups_out, g, t);
    }
    PyObject *bounds_out = bytes_of(bounds.p, bounds.n * (Py_ssize_t)sizeof(int64_t));
    PyObject *hashes_out = bytes_of(hashes.p, hashes.n * (Py_ssize_t)sizeof(int64_t));
    if (bounds_out && hashes_out) result = PyTuple_Pack(7, status, slow, ids, ucols_out, groups_out, bounds_out, hashes_out);
    self->hint_rows = row;
    if (self->hint_events)
        for (int g = 0; g < self->ngroups; g++) self->hint_events[g] = groups[g].uidx.n;
    Py_XDECREF(bounds_out);
    Py_XDECREF(hashes_out);
    if (!result) goto done;

done:
    if (s.sc) self->instance = s.instance; /* on every exit: nodes keep stamps of the instances used */
    Py_XDECREF(status);
    Py_XDECREF(slow);
    Py_XDECREF(ids);
    Py_XDECREF(ucols_out);
    Py_XDECREF(groups_out);
    PyMem_Free(st);
    PyMem_Free(bounds.p);
    PyMem_Free(hashes.p);
    PyMem_Free(marks);
    if (ucols) {
        for (int k = 0; k < self->nucols; k++) PyMem_Free(ucols[k].p);
        PyMem_Free(ucols);
    }
    if (groups) {
        for (int g = 0; g < self->ngroups; g++) {
            PyMem_Free(groups[g].uidx.p);
            if (groups[g].d) for (int k = 0; k < groups[g].ndbl; k++) PyMem_Free(groups[g].d[k].p);
            if (groups[g].c) for (int k = 0; k < groups[g].ncode; k++) PyMem_Free(groups[g].c[k].p);
            PyMem_Free(groups[g].d);
            PyMem_Free(groups[g].c);
        }
        PyMem_Free(groups);
    }
    PyBuffer_Release(&buf);
    return result;
}

/* ------------------------------------------------------------------ */
/* user id hashes                                                      */

static inline uint64_t fmix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 33;
    return h;
}

/* a 64-bit hash of an id's UTF-8 bytes: eight bytes a round, then murmur3's finaliser (ids are compared by
 * hash, and the rare equal hashes by their text, so it needs to spread well, not to resist attacks) */
static uint64_t id_hash(const unsigned char *p, Py_ssize_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)n * 0xC2B2AE3D27D4EB4FULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ fmix64(w)) * 0x87C37B91114253D5ULL;
        h = (h << 31) | (h >> 33);
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = (h ^ fmix64(w)) * 0x87C37B91114253D5ULL;
    }
    return fmix64(h);
}

PyDoc_STRVAR(hash_ids_doc,
"hash_ids(ids) -> bytes\n\n"
"64-bit hashes (uint64, native order) of a list of str ids, over their UTF-8 bytes: the hashes\n"
"``Scanner.scan`` gives the rows it decodes.");

static PyObject *hash_ids(PyObject *self, PyObject *ids) {
    if (!PyList_Check(ids)) {
        PyErr_SetString(PyExc_TypeError, "hash_ids: a list of str");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(ids);
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * 8);
    if (!out) return NULL;
    uint64_t *h = (uint64_t *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *id = PyList_GET_ITEM(ids, i);
        if (!PyUnicode_Check(id)) {
            Py_DECREF(out);
            PyErr_Format(PyExc_TypeError, "hash_ids: item %zd is %.100s, not str", i, Py_TYPE(id)->tp_name);
            return NULL;
        }
        Py_ssize_t len;
        const char *utf8 = PyUnicode_AsUTF8AndSize(id, &len);
        if (utf8) {
            h[i] = id_hash((const unsigned char *)utf8, len);
            continue;
        }
        PyErr_Clear(); /* a lone surrogate: its bytes as Python would spell them with surrogatepass */
        PyObject *b = PyUnicode_AsEncodedString(id, "utf-8", "surrogatepass");
        if (!b) { Py_DECREF(out); return NULL; }
        h[i] = id_hash((const unsigned char *)PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b));
        Py_DECREF(b);
    }
    return out;
}

/* ------------------------------------------------------------------ */
/* the filter of ids seen by every process scanning one snapshot       */

PyDoc_STRVAR(mark_seen_doc,
"mark_seen(bits, hashes) -> bytes\n\n"
"Set two bits per 64-bit hash in ``bits`` (a writable buffer of 2**k bits, typically a memory map\n"
"shared by several processes: the bits are set atomically), in order. Returns one byte per hash:\n"
"1 when both of its bits were already set (the id may have been seen before), else 0.");

static PyObject *mark_seen(PyObject *self, PyObject *args) {
    Py_buffer bits, hashes;
    if (!PyArg_ParseTuple(args, "w*y*", &bits, &hashes)) return NULL;
    PyObject *out = NULL;
    Py_ssize_t nwords = bits.len / 8, n = hashes.len / 8;
    if (nwords < 1 || (nwords & (nwords - 1)) || bits.len % 8 || hashes.len % 8 || ((uintptr_t)bits.buf & 7)) {
        PyErr_SetString(PyExc_ValueError, "mark_seen: bits must be an aligned power-of-two number of 64-bit words, "
                                          "hashes a whole number of 64-bit values");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, n);
    if (!out) goto done;
    {
        uint64_t *w = bits.buf;
        const uint64_t *h = hashes.buf;
        unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
        uint64_t mask = (uint64_t)nwords * 64 - 1;
        for (Py_ssize_t i = 0; i < n; i++) {
            uint64_t a = h[i] & mask, b = (h[i] * 0x9E3779B97F4A7C15ULL >> 17) & mask;
            uint64_t ba = 1ULL << (a & 63), bb = 1ULL << (b & 63);
            uint64_t was_a = __atomic_fetch_or(&w[a >> 6], ba, __ATOMIC_RELAXED) & ba;
            uint64_t was_b = __atomic_fetch_or(&w[b >> 6], bb, __ATOMIC_RELAXED) & bb;
            o[i] = was_a && was_b;
        }
    }
done:
    PyBuffer_Release(&bits);
    PyBuffer_Release(&hashes);
    return out;
}

/* ------------------------------------------------------------------ */
/* ids read past: a process sharing a file inflates the lines before its own anyway */

PyDoc_STRVAR(leading_ids_doc,
"leading_ids(buffer, key) -> (n_newlines, hashes)\n\n"
"For each line of ``buffer`` whose object starts with the member ``key`` (a byte string, no escapes)\n"
"holding a plain id (a string of 1 to 256 ASCII characters without control characters, escapes or edge\n"
"whitespace, or an integer of up to 18 digits), the hash of that id as ``scan`` computes it\n"
"(uint64). Other lines are passed over: the result is a subset of the ids ``scan`` would decode\n"
"(and, for a line that repeats its id key, possibly the first of them rather than the last).\n"
"``n_newlines`` is the number of newline bytes in ``buffer``.");

static PyObject *leading_ids(PyObject *self, PyObject *args) {
    Py_buffer buf;
    const char *key;
    Py_ssize_t keylen;
    if (!PyArg_ParseTuple(args, "y*y#", &buf, &key, &keylen)) return NULL;
    const unsigned char *p = buf.buf, *end = p + buf.len;
    LVec hashes = {0};
    Py_ssize_t newlines = 0;
    PyObject *result = NULL;
    while (p < end) {
        const unsigned char *nl = memchr(p, '\n', end - p);
        const unsigned char *lend = nl ? nl : end;
        const unsigned char *q = p;
        if (lend - q >= 3 && q[0] == 0xEF && q[1] == 0xBB && q[2] == 0xBF) q += 3;
        while (q < lend && WS(*q)) q++;
        if (q < lend && *q == '{') {
            q++;
            while (q < lend && WS(*q)) q++;
            if (lend - q > keylen + 2 && q[0] == '"' && memcmp(q + 1, key, keylen) == 0 && q[keylen + 1] == '"') {
                q += keylen + 2;
                while (q < lend && WS(*q)) q++;
                const unsigned char *v = NULL, *vend = NULL;
                if (q < lend && *q == ':') {
                    q++;
                    while (q < lend && WS(*q)) q++;
                    if (q < lend && *q == '"') {
                        const unsigned char *a = ++q;
                        while (q < lend && *q > 0x1f && *q < 0x80 && *q != '"' && *q != '\\') q++;
                        if (q < lend && *q == '"' && plain_id(a, q - a)) {
                            v = a;
                            vend = q++;
                        }
                    } else if (q < lend && (*q == '-' || (*q >= '0' && *q <= '9'))) {
                        const unsigned char *a = q;
                        if (*q == '-') q++;
                        const unsigned char *d = q;
                        while (q < lend && *q >= '0' && *q <= '9') q++;
                        Py_ssize_t nd = q - d;
                        /* an integer as JSON spells it: no leading zero, not -0 */
                        if (nd >= 1 && nd <= MAX_ID_DIGITS && !(d[0] == '0' && (nd > 1 || a != d))) {
                            v = a;
                            vend = q;
                        }
                    }
                }
                if (v) {
                    while (q < lend && WS(*q)) q++;
                    if (q < lend && (*q == ',' || *q == '}') &&
                        lvec_push(&hashes, (int64_t)id_hash(v, vend - v)) < 0) {
                        PyErr_NoMemory();
                        goto done;
                    }
                }
            }
        }
        if (!nl) break;
        newlines++;
        p = nl + 1;
    }
    result = Py_BuildValue("(nN)", newlines,
                           PyBytes_FromStringAndSize((const char *)hashes.p, hashes.n * (Py_ssize_t)sizeof(int64_t)));
done:
    PyMem_Free(hashes.p);
    PyBuffer_Release(&buf);
    return result;
}

/* ------------------------------------------------------------------ */
/* the shape of a profile: its objects without the contents of its lists */

PyDoc_STRVAR(strip_lists_doc,
"strip_lists(line) -> bytes\n\n"
"The JSON text ``line`` with the contents of every list left out (``[...]`` becomes ``[]``), for\n"
"reading the keys of a profile's objects without building its events. Strings are copied as they\n"
"are. A line that ends inside a list or a string is returned unchanged (the JSON parser then says\n"
"what is wrong with it); the contents of a list are not checked.");

static PyObject *strip_lists(PyObject *self, PyObject *arg) {
    Py_buffer buf;
    if (PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) < 0) return NULL;
    const unsigned char *p = buf.buf, *end = p + buf.len;
    PyObject *result = NULL;
    unsigned char *out = PyMem_Malloc(buf.len ? buf.len : 1);
    if (!out) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t n = 0, depth = 0; /* depth: of lists, while skipping one */
    while (p < end) {
        unsigned char c = *p++;
        if (c == '"') { /* a string, copied unless inside a skipped list */
            const unsigned char *a = p - 1;
            while (p < end && *p != '"') {
                if (*p == '\\' && end - p < 2) goto unchanged; /* a last escape: never step past the end */
                p += (*p == '\\') ? 2 : 1;
            }
            if (p >= end) goto unchanged;
            p++;
            if (!depth) {
                memcpy(out + n, a, p - a);
                n += p - a;
            }
        } else if (c == '[') {
            if (!depth++) out[n++] = '[';
        } else if (c == ']' && depth) {
            if (!--depth) out[n++] = ']';
        } else if (!depth) {
            out[n++] = c;
        }
    }
    if (depth) goto unchanged;
    result = PyBytes_FromStringAndSize((const char *)out, n);
    goto done;
unchanged:
    result = PyBytes_FromStringAndSize(buf.buf, buf.len);
done:
    PyMem_Free(out);
    PyBuffer_Release(&buf);
    return result;
}

static PyMethodDef module_methods[] = {
    {"mark_seen", (PyCFunction)mark_seen, METH_VARARGS, mark_seen_doc},
    {"hash_ids", (PyCFunction)hash_ids, METH_O, hash_ids_doc},
    {"leading_ids", (PyCFunction)leading_ids, METH_VARARGS, leading_ids_doc},
    {"strip_lists", (PyCFunction)strip_lists, METH_O, strip_lists_doc},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_O, scan_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sightlines._native._scanner.Scanner",
    .tp_doc = PyDoc_STR("Scanner(tree, n_user_columns, groups, latest): the compiled fast path of one decoding plan"),
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = Scanner_methods,
};

static struct PyModuleDef scanner_module = {
    PyModuleDef_HEAD_INIT, "_scanner", "Compiled fast path of the profile decoder (see sightlines/_fastdecode.py).", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__scanner(void) {
    for (int i = 0; i < NYEARS; i++) YEAR_DAYS[i] = (int32_t)days_from_civil(YEAR0 + i, 1, 1);
    if (PyType_Ready(&ScannerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&scanner_module);
    if (!m) return NULL;
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "K_OBJ", K_OBJ);
    PyModule_AddIntConstant(m, "K_LEAF", K_LEAF);
    PyModule_AddIntConstant(m, "K_LEN", K_LEN);
    PyModule_AddIntConstant(m, "K_RECORDS", K_RECORDS);
    PyModule_AddIntConstant(m, "K_ITEMS", K_ITEMS);
    PyModule_AddIntConstant(m, "C_NUM", C_NUM);
    PyModule_AddIntConstant(m, "C_TIME", C_TIME);
    PyModule_AddIntConstant(m, "C_CAT", C_CAT);
    PyModule_AddIntConstant(m, "C_ID", C_ID);
    PyModule_AddIntConstant(m, "C_LEN", C_LEN);
    PyModule_AddIntConstant(m, "C_RCODE", C_RCODE);
    PyModule_AddIntConstant(m, "C_QTY", C_QTY);
    return m;
}
