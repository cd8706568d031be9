"""The secure operators of sqlmpc's MPC backend, one job per module (see ``ops.py`` for the
facade that generated programs import).

    table        SecTable (secret columns + secret valid flags), constants, companion columns
    encoding     SQL values <-> exact secfxp numbers; companion column names
    keyspec      public key ranges of sort keys; bits of clear key values
    smallfield   Shamir sharing over GF(2^31 - 1) on int64 arrays
    shuffle      the resharing shuffle (Laur, Willemson, Zhang)
    bits         values between the big field and small-field bits
    radix        the oblivious radix sort (Asharov et al.) and its steps
    input        share_input: the owners' rows into MPC
    expr         row expressions: comparisons, booleans, division, texts
    fxpdiv       secure fixed-point division by a secret divisor
    intdiv       exact floor division of secret integers by public constants
    dates        EXTRACT, DATE_TRUNC and month arithmetic on secret dates
    text_match   LIKE 'abc' and LIKE 'abc%' on secret texts
    rows         UNION ALL, WHERE, SELECT, renames, cross join
    sort         ORDER BY / LIMIT, DISTINCT and the sort they share
    aggregate    GROUP BY on secret keys, whole-table aggregates
    public_keys  GROUP BY on public keys
    onehot       GROUP BY over a declared public domain
    joinkeys     join keys for the sort-based joins
    join         nested-loop and PK-FK joins; the dispatch to mmjoin
    mmjoin       the sort-based many-to-many join (reveals its size)
    semijoin     IN / EXISTS and their negations
    reveal       opening the result to its recipients only
    result       the recipients' result frame and plain steps after the reveal
    public       columns the owners declared public, in the clear
    limits       public sizes at which operators switch algorithms
    phases       when the program reached each phase (for --stats)
    truncation   array products truncated with enough mask bits (a fix of MPyC 0.11)
    inputs_file  the JSON file of a party's encoded rows

The modules import only each other (never ``ops.py``), numpy, MPyC, and the compiler's error
types; none uses another's private names.
"""
