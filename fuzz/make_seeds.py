#!/usr/bin/env python3
"""Writes the binary seeds of fuzz/corpus/ that are not copied from fixtures/ as they are:
a cut-down Shapefile (parts for the `shapefile` target, a ZIP for `shapefile_zip`), small
GeoPackages (`gpkg`), GeoPackage geometry blobs (`gpkg_wkb`) and small PMTiles v3
basemaps (`pmtiles`). Python standard library
only; run from the repository root: python3 fuzz/make_seeds.py"""
import gzip, io, json, os, sqlite3, struct, tempfile, zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
SEP = b"--citygrid-part--"  # citygrid::fuzzing::PART_SEPARATOR


def out(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data)


def cut_shapefile(n):
    """The first n shapes and records of fixtures/city-gk/grids.zip."""
    z = zipfile.ZipFile(os.path.join(ROOT, "fixtures", "city-gk", "grids.zip"))
    shp, dbf = z.read("grids.shp"), z.read("grids.dbf")
    prj, cpg = z.read("grids.prj"), z.read("grids.cpg")
    pos, records = 100, []
    for _ in range(n):
        words = struct.unpack(">i", shp[pos + 4:pos + 8])[0]
        records.append(shp[pos:pos + 8 + 2 * words])
        pos += 8 + 2 * words
    body = b"".join(records)
    header = bytearray(shp[:100])
    header[24:28] = struct.pack(">i", (100 + len(body)) // 2)
    shp = bytes(header) + body
    header_len, record_len = struct.unpack("<HH", dbf[8:12])
    dheader = bytearray(dbf[:header_len])
    dheader[4:8] = struct.pack("<I", n)
    dbf = bytes(dheader) + dbf[header_len:header_len + n * record_len] + b"\x1a"
    return shp, dbf, prj, cpg


def blob(wkb, srs=4549, envelope=None):
    flags = 0x01 | ((1 << 1) if envelope else 0)  # little-endian header, envelope code 1
    out = b"GP\x00" + bytes([flags]) + struct.pack("<i", srs)
    if envelope:
        out += struct.pack("<4d", *envelope)
    return out + wkb


def wkb_point(x, y, big=False):
    e = ">" if big else "<"
    return bytes([0 if big else 1]) + struct.pack(e + "I2d", 1, x, y)


def wkb_polygon(rings, big=False, code=3):
    e = ">" if big else "<"
    out = bytes([0 if big else 1]) + struct.pack(e + "II", code, len(rings))
    for ring in rings:
        out += struct.pack(e + "I", len(ring)) + b"".join(struct.pack(e + "2d", *p) for p in ring)
    return out


def wkb_multi(code, parts, big=False):
    e = ">" if big else "<"
    return bytes([0 if big else 1]) + struct.pack(e + "II", code, len(parts)) + b"".join(parts)


GPKG_DDL = """
PRAGMA page_size = 1024; PRAGMA application_id = 1196444487; PRAGMA user_version = 10400;
CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
    organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
INSERT INTO gpkg_spatial_ref_sys VALUES ('Undefined cartesian SRS', -1, 'NONE', -1, 'undefined', NULL),
    ('Undefined geographic SRS', 0, 'NONE', 0, 'undefined', NULL),
    ('WGS 84 geodetic', 4326, 'EPSG', 4326, 'GEOGCS["WGS 84"]', NULL),
    ('CGCS2000 / 3-degree Gauss-Kruger CM 120E', 4549, 'EPSG', 4549, 'PROJCS["CGCS2000 / 3-degree Gauss-Kruger CM 120E"]', NULL);
CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
    description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT '2026-01-01T00:00:00Z',
    min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER);
CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
    srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL, CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name));
"""


def gpkg(table, geometry_type, srs, columns, rows):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.gpkg")
        db = sqlite3.connect(path)
        db.executescript(GPKG_DDL)
        defs = "".join(f', "{n}" {t}' for n, t in columns)
        db.execute(f'CREATE TABLE "{table}" (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom {geometry_type}{defs})')
        db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id) VALUES (?, 'features', ?, ?)", (table, table, srs))
        db.execute("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', ?, ?, 0, 0)", (table, geometry_type, srs))
        names = "".join(f', "{n}"' for n, _ in columns)
        marks = ", ?" * len(columns)
        db.executemany(f'INSERT INTO "{table}" (geom{names}) VALUES (?{marks})', rows)
        db.commit()
        db.execute("VACUUM")
        db.close()
        with open(path, "rb") as f:
            return f.read()


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def tile_id(z, x, y):
    """PMTiles v3 tile id: the tiles of lower zooms, then the Hilbert index of (x, y)."""
    n, d, s = 1 << z, 0, (1 << z) // 2
    while s > 0:
        rx, ry = int(x & s > 0), int(y & s > 0)
        d += s * s * ((3 * rx) ^ ry)
        if ry == 0:
            if rx == 1:
                x, y = n - 1 - x, n - 1 - y
            x, y = y, x
        s //= 2
    return ((1 << 2 * z) - 1) // 3 + d


def directory(entries):
    """entries: (tile_id, offset, length, run_length), sorted."""
    out = varint(len(entries))
    last = 0
    for e in entries:
        out += varint(e[0] - last)
        last = e[0]
    for e in entries:
        out += varint(e[3])
    for e in entries:
        out += varint(e[2])
    for i, e in enumerate(entries):
        follows = i > 0 and e[1] == entries[i - 1][1] + entries[i - 1][2]
        out += varint(0 if follows else e[1] + 1)
    return out


def pmtiles(tiles, tile_type, per_leaf=None, compress=True):
    """A PMTiles v3 file of tiles [(z, x, y, bytes)]; leaf directories of per_leaf entries."""
    comp = (lambda b: gzip.compress(b, mtime=0)) if compress else (lambda b: b)
    tiles = sorted(tiles, key=lambda t: tile_id(*t[:3]))
    data, entries = b"", []
    for z, x, y, b in tiles:
        entries.append((tile_id(z, x, y), len(data), len(b), 1))
        data += b
    leaves = b""
    if per_leaf and len(entries) > per_leaf:
        root = []
        for i in range(0, len(entries), per_leaf):
            leaf = comp(directory(entries[i:i + per_leaf]))
            root.append((entries[i][0], len(leaves), len(leaf), 0))
            leaves += leaf
        root = comp(directory(root))
    else:
        root = comp(directory(entries))
    meta = comp(json.dumps({"name": "seed", "vector_layers": [{"id": "transportation", "fields": {}}]}).encode())
    ro = 127
    mo = ro + len(root)
    lo = mo + len(meta)
    do = lo + len(leaves)
    zs = [t[0] for t in tiles]
    header = b"PMTiles" + bytes([3]) + struct.pack("<11Q", ro, len(root), mo, len(meta), lo, len(leaves), do, len(data),
                                                   len(tiles), len(tiles), len(tiles))
    header += bytes([1, 2 if compress else 1, 2 if tile_type == 1 else 1, tile_type, min(zs), max(zs)])
    header += struct.pack("<4i", 1200000000, 310000000, 1210000000, 320000000) + bytes([min(zs)])
    header += struct.pack("<2i", 1205000000, 315000000)
    assert len(header) == 127
    return header + root + meta + leaves + data


def main():
    shp, dbf, prj, cpg = cut_shapefile(3)
    out("shapefile", "grids3.parts", SEP.join([shp, dbf, prj, cpg]))
    out("shapefile", "grids3-no-cpg.parts", SEP.join([shp, dbf, prj]))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for ext, data in [("shp", shp), ("dbf", dbf), ("prj", prj), ("cpg", cpg)]:
            z.writestr("grids." + ext, data)
    out("shapefile_zip", "grids3.zip", buf.getvalue())

    square = [(557000.0, 3461000.0), (557100.0, 3461000.0), (557100.0, 3461100.0), (557000.0, 3461100.0), (557000.0, 3461000.0)]
    hole = [(557040.0, 3461040.0), (557060.0, 3461040.0), (557060.0, 3461060.0), (557040.0, 3461040.0)]
    env = (557000.0, 557100.0, 3461000.0, 3461100.0)
    poly = wkb_polygon([square, hole])
    mpoly_be = wkb_multi(6, [wkb_polygon([square], big=True)], big=True)
    out("gpkg_wkb", "point.blob", blob(wkb_point(557140.955, 3461065.011)))
    out("gpkg_wkb", "polygon-envelope.blob", blob(poly, envelope=env))
    out("gpkg_wkb", "multipolygon-be.blob", blob(mpoly_be))
    out("gpkg_wkb", "multipoint.blob", blob(wkb_multi(4, [wkb_point(1.0, 2.0), wkb_point(3.0, 4.0)])))
    out("gpkg_wkb", "collection.blob", blob(wkb_multi(7, [wkb_point(1.0, 2.0), poly])))
    ring_z = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)]
    polygon_z = bytes([1]) + struct.pack("<III", 1003, 1, len(ring_z)) + b"".join(struct.pack("<3d", x, y, 1.0) for x, y in ring_z)
    out("gpkg_wkb", "polygon-z.blob", blob(polygon_z))

    mvt = bytes.fromhex("1a1d0a0e7472616e73706f72746174696f6e1202180228800278021a0568656c6c6f")
    out("pmtiles", "vector-leaves.pmtiles", pmtiles(
        [(z, x, y, gzip.compress(mvt, mtime=0)) for z in range(3) for x in range(1 << z) for y in range(1 << z)], 1, per_leaf=4))
    out("pmtiles", "raster-root.pmtiles", pmtiles([(0, 0, 0, b"\x89PNG\r\n\x1a\n" + b"\0" * 16), (1, 1, 0, b"\xff\xd8\xff\xe0")], 2, compress=False))

    out("gpkg", "components.gpkg", gpkg("部件", "POINT", 4549, [("部件标识码", "TEXT"), ("小类", "TEXT"), ("状态", "TEXT")], [
        (blob(wkb_point(558616.381, 3465941.696)), "3205090101000001", "0101", "完好"),
        (blob(wkb_point(559799.616, 3466385.406)), "3205090101000002", "0101", None),
    ]))
    out("gpkg", "grids.gpkg", gpkg("grids", "MULTIPOLYGON", 4549, [("网格编码", "TEXT"), ("层级", "INTEGER"), ("面积", "REAL")], [
        (blob(mpoly_be, envelope=env), "32050900100101", 4, 1.5),
        (blob(poly), "32050900100102", 4, None),
    ]))


if __name__ == "__main__":
    main()
