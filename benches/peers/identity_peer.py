"""The peers of martdb's identity resolution: python-igraph's connected components and
DuckDB's recursive CTE over the same identity edges, the data generator, and the
reference of the differential test. One JSON object on stdout per command.

generate --edges N --identifiers M --seed S --out FILE.parquet
    An identity edge table (id_a, type_a, id_b, type_b, observed_at, source, and node_a,
    node_b: the dense index of each identifier, in order of first appearance), shaped
    like a real identity graph: persons of 2 identifiers mostly, a tail up to 8, each a
    random spanning tree with some pairs observed again and a few extra edges; shared
    store-tablet devices linked to 60-500 persons each; and junk values ('00000000000'
    phone, 'null' device, '-1' openid) on ~0.05% of the edges. Exactly N edges; the
    share of persons larger than 2 is solved for M identifiers, within bounds that keep
    the shape (a spanning forest has at most 2 identifiers per edge, so M near 2N ends
    at the lower bound with fewer identifiers than asked: see "identifiers").
    -> {"edges", "identifiers", "persons", "hub_devices", "hub_edges", "junk_edges",
        "repeat_edges", "extra_edges", "seconds"}
igraph --data FILE [--runs R]
    igraph.Graph over node_a/node_b, then connected_components(); best of R of each.
    -> {"edge_input", "nodes", "edges", "build_s", "components_s", "total_s",
        "components", "largest", "peak_rss_bytes"}
duckdb --data FILE [--timeout S] [--threads T] [--memory-limit L] [--form F]
    Connected components of the string identifiers (type || ':' || id) by min-label
    propagation in a recursive CTE, from the Parquet file to the count.
    -> {"form", "seconds", "load_s", "query_s", "components", "timed_out",
        "peak_rss_bytes"}
differential --seed S --nodes N --edges E
    A random multigraph over nodes 0..N-1 (self-loops, duplicate edges, nodes seen only
    in self-loops) and igraph's components of it. Nodes in no edge are left out:
    "vertices" lists the nodes that appear, ascending, and "membership" their
    components, numbered 0.. in order of first appearance in "vertices".
    -> {"edges": [[a, b], ...], "vertices": [...], "membership": [...], "components": C}
"""

import argparse
import json
import resource
import sys
import threading
import time

import duckdb
import igraph
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

TYPES = ["phone", "device", "openid", "email", "cookie"]
PHONE, DEVICE, OPENID, EMAIL, COOKIE = range(len(TYPES))
# The values that rules should catch, each one identifier linked to many persons. They
# take local ids 0..2 (below).
JUNK = [(PHONE, "00000000000"), (DEVICE, "null"), (OPENID, "-1")]
SOURCES = ["app", "web", "wechat", "crm", "store_pos"]
APP, WEB, WECHAT, CRM, STORE_POS = range(len(SOURCES))

SCHEMA = pa.schema(
    [
        ("id_a", pa.string()),
        ("type_a", pa.string()),
        ("id_b", pa.string()),
        ("type_b", pa.string()),
        ("observed_at", pa.timestamp("us")),
        ("source", pa.string()),
        ("node_a", pa.int64()),
        ("node_b", pa.int64()),
    ]
)
ROW_GROUP = 1 << 20

# Persons are of size 2, or (a share t of them) 3..8 with geometrically falling odds.
TAIL_P = 0.55 * 0.45 ** np.arange(6)
TAIL_P /= TAIL_P.sum()
TAIL_MEAN = float(TAIL_P @ np.arange(1, 7))  # mean identifiers beyond 2 in the tail
TAIL_SHARE = (0.05, 0.6)  # bounds on t
REPEAT_RATE = 0.02  # tree edges observed once more
EXTRA_RATE = 0.1  # extra edges per person of 3 or more
HUB_RATE = 3e-5  # store-tablet devices per edge: 300 at 10M edges
HUB_LINKS = (60, 500)  # persons per hub device
JUNK_RATE = 5e-4  # edges to a junk value
# The first identifier of a person (the one store tablets see) and the others.
FIRST_TYPE_P = {PHONE: 0.6, OPENID: 0.4}
OTHER_TYPE_P = {DEVICE: 0.35, COOKIE: 0.25, OPENID: 0.15, EMAIL: 0.15, PHONE: 0.1}
YEAR_2024_US = (1_704_067_200_000_000, 1_735_689_600_000_000)

HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
OPENID_CHARS = np.frombuffer(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", np.uint8
)
EMAIL_NAMES = pa.array(
    ["zhangwei", "lina", "wangfang", "liuyang", "chenjing", "yangli", "zhaolei",
     "huangmin", "zhouyan", "wuhao", "xujie", "sunli", "maqiang", "zhuhong", "hutao",
     "guojun", "helin", "linfeng", "luoxin", "gaoyu"]
)
EMAIL_DOMAINS = pa.array(
    ["@qq.com", "@163.com", "@126.com", "@gmail.com", "@outlook.com", "@sina.com",
     "@foxmail.com", "@hotmail.com"]
)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection of uint64, so distinct ids give distinct words."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB
    return x ^ (x >> 31)


def fixed_width(chars: np.ndarray) -> pa.Array:
    """Rows of ASCII bytes, shape (n, w), as a string array without Python strings."""
    n, w = chars.shape
    offsets = np.arange(n + 1, dtype=np.int32) * w
    data = np.ascontiguousarray(chars)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def hex_digits(words: np.ndarray) -> np.ndarray:
    b = words.astype(">u8").view(np.uint8).reshape(-1, 8)
    return HEX[np.stack([b >> 4, b & 15], axis=2).reshape(-1, 16)]


# Each maker turns distinct local ids (uint64) into distinct strings of its type. The id
# formats differ between types too, so an id alone never names two identifiers.
def phones(x: np.ndarray) -> pa.Array:
    # '13' and 9 digits: an affine bijection of [0, 1e9) scatters consecutive ids.
    number = (x * 387_420_489 + 123_456_789) % 1_000_000_000
    digits = (number[:, None] // 10 ** np.arange(8, -1, -1, dtype=np.uint64)) % 10
    prefix = np.broadcast_to(np.frombuffer(b"13", np.uint8), (len(x), 2))
    return fixed_width(np.hstack([prefix, (digits + 48).astype(np.uint8)]))


def devices(x: np.ndarray) -> pa.Array:
    return fixed_width(np.hstack([hex_digits(mix64(x ^ 0x5DEECE66D)), hex_digits(mix64(~x))]))


def openids(x: np.ndarray) -> pa.Array:
    # 'o' and 27 characters of [A-Za-z0-9-_] from 162 random bits, the first 64 of which
    # are a bijection of the id.
    words = np.stack([mix64(x ^ 0xA5A5), mix64(x + 0x9E3779B97F4A7C15), mix64(~x)], axis=1)
    bits = np.unpackbits(words.astype(">u8").view(np.uint8), axis=1)
    sextets = bits.reshape(len(x), 32, 6) @ np.array([32, 16, 8, 4, 2, 1], np.uint8)
    chars = OPENID_CHARS[sextets[:, :27]]
    return fixed_width(np.hstack([np.full((len(x), 1), ord("o"), np.uint8), chars]))


def emails(x: np.ndarray) -> pa.Array:
    # name + number + '@domain': the name is letters only, so distinct numbers (a
    # bijection of [0, 1e8)) make distinct addresses.
    number = (x * 2_654_435_761 + 31_415_926) % 100_000_000
    word = mix64(x ^ 0xE3A1)
    names = EMAIL_NAMES.take(pa.array(word % len(EMAIL_NAMES)))
    domains = EMAIL_DOMAINS.take(pa.array((word >> 32) % len(EMAIL_DOMAINS)))
    return pc.binary_join_element_wise(names, pc.cast(pa.array(number), pa.string()), domains, "")


def cookies(x: np.ndarray) -> pa.Array:
    # Shaped like a version-4 UUID; the last 16 hex digits are a bijection of the id.
    digits = np.hstack([hex_digits(mix64(x ^ 0xC00C1E)), hex_digits(mix64(x ^ 0xBEEF))])
    digits[:, 12] = ord("4")
    dash = np.full((len(x), 1), ord("-"), np.uint8)
    parts = np.split(digits, [8, 12, 16, 20], axis=1)
    with_dashes = [parts[0]] + [x for part in parts[1:] for x in (dash, part)]
    return fixed_width(np.hstack(with_dashes))


MAKERS = {PHONE: phones, DEVICE: devices, OPENID: openids, EMAIL: emails, COOKIE: cookies}


def identifier_strings(local: np.ndarray, kind: np.ndarray) -> pa.Array:
    """The id strings of local ids (with their types `kind`), in their order."""
    junk = local < len(JUNK)
    groups = [np.flatnonzero(junk)]
    pieces = [pa.array([JUNK[i][1] for i in local[groups[0]]], pa.string())]
    for code, make in MAKERS.items():
        rows = np.flatnonzero((kind == code) & ~junk)
        groups.append(rows)
        pieces.append(make(local[rows].astype(np.uint64)))
    rows = np.concatenate(groups)
    position = np.empty_like(rows)
    position[rows] = np.arange(len(rows))
    return pa.concat_arrays(pieces).take(pa.array(position))


def tail_share(target_ratio: float) -> float:
    """The share t of persons above 2 identifiers for `target_ratio` identifiers per edge:
    identifiers per person 2 + t*m over edges per person (1 + t*m)(1 + repeat) + t*extra."""
    m, r, x = TAIL_MEAN, REPEAT_RATE, EXTRA_RATE
    denominator = target_ratio * (m * (1 + r) + x) - m
    t = (2 - target_ratio * (1 + r)) / denominator if denominator > 0 else TAIL_SHARE[1]
    return float(np.clip(t, *TAIL_SHARE))


def generate(args) -> dict:
    started = time.perf_counter()
    n_edges = args.edges
    if n_edges < 10:
        raise SystemExit("--edges must be at least 10")
    rng = np.random.default_rng(args.seed)

    # Noise first, its size set by the edge count alone. Tiny tables still get one hub
    # when 60 links fit in a tenth of the edges.
    n_hubs = round(n_edges * HUB_RATE) or (1 if n_edges // 10 >= HUB_LINKS[0] else 0)
    hub_links = rng.integers(HUB_LINKS[0], min(HUB_LINKS[1], n_edges // 10) + 1, size=n_hubs)
    n_junk = max(len(JUNK), round(n_edges * JUNK_RATE))
    person_edges = n_edges - int(hub_links.sum()) - n_junk

    # Persons: the tail share for the identifiers asked for, then sizes until their
    # spanning trees have exactly their share of the person edges (the last person cut
    # to fit); the rest of the person edges are repeats and extra edges.
    base = len(JUNK) + n_hubs  # local ids: junk values, hub devices, then persons
    t = tail_share((args.identifiers - base) / person_edges)
    tree_per_person = 1 + t * TAIL_MEAN
    edges_per_person = tree_per_person * (1 + REPEAT_RATE) + t * EXTRA_RATE
    n_tree = round(person_edges * tree_per_person / edges_per_person)
    sizes = np.where(
        rng.random(n_tree) < t, 3 + rng.choice(len(TAIL_P), size=n_tree, p=TAIL_P), 2
    )
    tree_edges = np.cumsum(sizes - 1)
    n_persons = int(np.searchsorted(tree_edges, n_tree)) + 1
    sizes = sizes[:n_persons]
    sizes[-1] -= tree_edges[n_persons - 1] - n_tree
    starts = base + np.cumsum(sizes) - sizes  # local id of each person's first identifier
    n_ids = base + int(sizes.sum())
    if n_ids >= 100_000_000:  # the email numbers are a bijection of [0, 1e8)
        raise SystemExit("at most 1e8 identifiers")

    kind = np.empty(n_ids, np.uint8)
    kind[: len(JUNK)] = [code for code, _ in JUNK]
    kind[len(JUNK) : base] = DEVICE
    kind[base:] = rng.choice(list(OTHER_TYPE_P), size=n_ids - base, p=list(OTHER_TYPE_P.values()))
    kind[starts] = rng.choice(list(FIRST_TYPE_P), size=n_persons, p=list(FIRST_TYPE_P.values()))

    # A random recursive tree per person: identifier j links to one of identifiers 0..j-1.
    person_start = np.repeat(starts, sizes)
    position = np.arange(base, n_ids) - person_start
    child = np.flatnonzero(position > 0) + base
    below = (rng.random(len(child)) * position[child - base]).astype(np.int64)
    parent = person_start[child - base] + below

    rest = person_edges - n_tree
    big = np.flatnonzero(sizes > 2)
    extra_share = t * EXTRA_RATE / (t * EXTRA_RATE + tree_per_person * REPEAT_RATE)
    n_extra = round(rest * extra_share) if len(big) else 0
    n_repeat = rest - n_extra
    repeat = rng.integers(0, n_tree, size=n_repeat)
    extra_person = rng.choice(big, size=n_extra) if n_extra else np.empty(0, np.int64)
    k = sizes[extra_person]
    first = (rng.random(n_extra) * k).astype(np.int64)
    second = (first + 1 + (rng.random(n_extra) * (k - 1)).astype(np.int64)) % k

    # Hub devices link to the first identifier of distinct persons; junk values to any
    # identifier of any person.
    hub_a = np.repeat(np.arange(len(JUNK), base), hub_links)
    hub_b = np.concatenate(
        [starts[rng.choice(n_persons, size=links, replace=False)] for links in hub_links]
        or [np.empty(0, np.int64)]
    )
    junk_person = rng.integers(0, n_persons, size=n_junk)
    junk_b = starts[junk_person] + (rng.random(n_junk) * sizes[junk_person]).astype(np.int64)

    junk_a = np.arange(n_junk) % len(JUNK)
    la = np.concatenate([child, child[repeat], starts[extra_person] + first, hub_a, junk_a])
    lb = np.concatenate([parent, parent[repeat], starts[extra_person] + second, hub_b, junk_b])
    assert len(la) == n_edges
    is_hub = np.zeros(n_edges, bool)
    is_hub[n_edges - n_junk - len(hub_a) : n_edges - n_junk] = True
    flip = rng.random(n_edges) < 0.5
    la, lb = np.where(flip, lb, la), np.where(flip, la, lb)

    ka, kb = kind[la], kind[lb]
    source = np.select(
        [is_hub] + [(ka == code) | (kb == code) for code in (OPENID, COOKIE, DEVICE)],
        [STORE_POS, WECHAT, WEB, APP],
        CRM,
    ).astype(np.uint8)
    observed = rng.integers(*YEAR_2024_US, size=n_edges)

    # The table is in time order, like an append-only log; node ids number identifiers
    # by first appearance in it, so they carry nothing of the person structure.
    order = np.argsort(observed, kind="stable")
    la, lb, source, observed = la[order], lb[order], source[order], observed[order]
    del ka, kb, is_hub, flip, order
    interleaved = np.empty(2 * n_edges, np.int64)
    interleaved[0::2], interleaved[1::2] = la, lb
    seen, first_at = np.unique(interleaved, return_index=True)
    assert len(seen) == n_ids, "every identifier is in some edge"
    node = np.empty(n_ids, np.int64)
    node[np.argsort(first_at)] = np.arange(n_ids)
    del interleaved, seen, first_at

    types, sources = pa.array(TYPES), pa.array(SOURCES)
    with pq.ParquetWriter(args.out, SCHEMA) as writer:
        for lo in range(0, n_edges, ROW_GROUP):
            a, b = la[lo : lo + ROW_GROUP], lb[lo : lo + ROW_GROUP]
            columns = [
                identifier_strings(a, kind[a]),
                types.take(pa.array(kind[a])),
                identifier_strings(b, kind[b]),
                types.take(pa.array(kind[b])),
                pa.array(observed[lo : lo + ROW_GROUP], pa.timestamp("us")),
                sources.take(pa.array(source[lo : lo + ROW_GROUP])),
                pa.array(node[a]),
                pa.array(node[b]),
            ]
            table = pa.Table.from_arrays(columns, schema=SCHEMA)
            writer.write_table(table, row_group_size=ROW_GROUP)
    return {
        "edges": n_edges,
        "identifiers": n_ids,
        "persons": n_persons,
        "hub_devices": n_hubs,
        "hub_edges": len(hub_a),
        "junk_edges": n_junk,
        "repeat_edges": n_repeat,
        "extra_edges": n_extra,
        "seconds": time.perf_counter() - started,
    }


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def run_igraph(args) -> dict:
    table = pq.read_table(args.data, columns=["node_a", "node_b"])
    a = table.column("node_a").to_numpy()
    b = table.column("node_b").to_numpy()
    del table
    n = int(max(a.max(), b.max())) + 1

    # The abi3 wheel of python-igraph 1.0 accepts an (m, 2) numpy array, but turns it
    # into a memoryview and then, without the full Python API, into nested lists by
    # tolist(). A list of tuples built with zip is faster: at 10M edges, best of 2,
    # 4.9 s against 8.0 s for the array and 5.2 s for Read_Edgelist of a text file
    # that pyarrow writes to /dev/shm.
    def build():
        return igraph.Graph(n=n, edges=list(zip(a.tolist(), b.tolist())))

    build_s, graph = float("inf"), None
    for _ in range(args.runs):
        graph = None  # one graph in memory at a time
        started = time.perf_counter()
        graph = build()
        build_s = min(build_s, time.perf_counter() - started)
    components_s = float("inf")
    for _ in range(args.runs):
        started = time.perf_counter()
        clusters = graph.connected_components()
        components_s = min(components_s, time.perf_counter() - started)
    return {
        "edge_input": "list of tuples",
        "nodes": n,
        "edges": len(a),
        "build_s": build_s,
        "components_s": components_s,
        "total_s": build_s + components_s,
        "components": len(clusters),
        "largest": max(clusters.sizes()),
        "peak_rss_bytes": peak_rss_bytes(),
    }


# Min-label propagation. With USING KEY (DuckDB 1.3+) the CTE keeps one row per node,
# its current label; each step sends the labels that changed last step (the working
# table) along the arcs and keeps only improvements over the current labels
# (recurring.cc), so it ends once no label falls. Without a key, UNION keeps every
# (node, label reached) pair, the transitive closure, and the minimum is taken after.
CTE = {
    "using-key": """
        WITH RECURSIVE cc(node, label) USING KEY (node) AS (
            SELECT node, node FROM nodes
            UNION
            SELECT arcs.dst, min(cc.label)
            FROM cc JOIN arcs ON arcs.src = cc.node
            JOIN recurring.cc AS known ON known.node = arcs.dst
            GROUP BY arcs.dst
            HAVING min(cc.label) < min(known.label)
        )
        SELECT count(DISTINCT label) FROM cc""",
    "union": """
        WITH RECURSIVE reach(node, label) AS (
            SELECT node, node FROM nodes
            UNION
            SELECT arcs.dst, reach.label FROM reach JOIN arcs ON arcs.src = reach.node
        )
        SELECT count(DISTINCT label) FROM (SELECT min(label) AS label FROM reach GROUP BY node)""",
}


def run_duckdb(args) -> dict:
    con = duckdb.connect()
    con.execute(f"SET threads TO {int(args.threads)}")
    if args.memory_limit:
        con.execute(f"SET memory_limit = '{args.memory_limit}'")
    path = args.data.replace("'", "''")
    out = {"form": args.form, "timed_out": False}
    failure = []

    def work():
        try:
            started = time.perf_counter()
            # Both directions of every edge, so that labels flow either way.
            con.execute(
                "CREATE TABLE arcs AS WITH e AS (SELECT type_a || ':' || id_a AS a, "
                f"type_b || ':' || id_b AS b FROM read_parquet('{path}')) "
                "SELECT a AS src, b AS dst FROM e UNION ALL SELECT b, a FROM e"
            )
            con.execute("CREATE TABLE nodes AS SELECT DISTINCT src AS node FROM arcs")
            loaded = time.perf_counter()
            out["components"] = con.execute(CTE[args.form]).fetchone()[0]
            done = time.perf_counter()
            out.update(seconds=done - started, load_s=loaded - started, query_s=done - loaded)
        except duckdb.InterruptException:
            pass
        except Exception as error:  # re-raised in the main thread
            failure.append(error)

    started = time.perf_counter()
    worker = threading.Thread(target=work)
    worker.start()
    worker.join(args.timeout)
    if worker.is_alive():
        con.interrupt()
        worker.join()
        out.update(timed_out=True, seconds=time.perf_counter() - started, components=None)
    if failure:
        raise failure[0]
    out["peak_rss_bytes"] = peak_rss_bytes()
    return out


def differential(args) -> dict:
    rng = np.random.default_rng(args.seed)
    n, e = args.nodes, args.edges
    # A fiftieth of the nodes (the top ids) appear only in self-loops; a fiftieth of
    # the edges are those loops, a thirtieth other self-loops, a twentieth duplicates
    # (some reversed) of earlier edges, the rest uniform pairs.
    loners = n // 50
    regular = n - loners
    n_lone, n_loop, n_dup = (e // 50 if loners else 0), e // 30, e // 20
    n_pair = e - n_lone - n_loop - n_dup
    lone = rng.integers(regular, n, size=n_lone)
    loop = rng.integers(0, regular, size=n_loop)
    pairs = rng.integers(0, regular, size=(n_pair, 2))
    edges = np.concatenate([np.stack([lone, lone], 1), np.stack([loop, loop], 1), pairs])
    if n_dup:
        dup = edges[rng.integers(0, len(edges), size=n_dup)]
        flip = rng.random(n_dup) < 0.5
        dup[flip] = dup[flip][:, ::-1]
        edges = np.concatenate([edges, dup])
    edges = edges[rng.permutation(len(edges))]

    membership = np.array(igraph.Graph(n=n, edges=edges.tolist()).connected_components().membership)
    vertices = np.unique(edges)
    _, first, labels = np.unique(membership[vertices], return_index=True, return_inverse=True)
    renumber = np.empty(len(first), np.int64)
    renumber[np.argsort(first)] = np.arange(len(first))
    return {
        "edges": edges.tolist(),
        "vertices": vertices.tolist(),
        "membership": renumber[labels].tolist(),
        "components": len(first),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate")
    gen.add_argument("--edges", type=int, default=10_000_000)
    gen.add_argument("--identifiers", type=int, default=20_000_000)
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--out", required=True)
    ig = commands.add_parser("igraph")
    ig.add_argument("--data", required=True)
    ig.add_argument("--runs", type=int, default=3)
    dd = commands.add_parser("duckdb")
    dd.add_argument("--data", required=True)
    dd.add_argument("--timeout", type=float, default=900.0)
    dd.add_argument("--threads", type=int, default=2)
    dd.add_argument("--memory-limit", help="DuckDB's memory_limit, e.g. 8GB (default: its own)")
    dd.add_argument("--form", choices=sorted(CTE), default="using-key")
    diff = commands.add_parser("differential")
    diff.add_argument("--seed", type=int, required=True)
    diff.add_argument("--nodes", type=int, required=True)
    diff.add_argument("--edges", type=int, required=True)
    args = parser.parse_args()
    run = {
        "generate": generate,
        "igraph": run_igraph,
        "duckdb": run_duckdb,
        "differential": differential,
    }
    json.dump(run[args.command](args), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
