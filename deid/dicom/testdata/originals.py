# Prints, for each DICOM file named on the command line, one JSON line with
# the identifying values pydicom reads (decoded under the file's character
# set) and their raw bytes, for deid/dicom's leak test.
import json, sys
import pydicom

TAGS = [(0x0010, 0x0010), (0x0010, 0x0020), (0x0020, 0x000D), (0x0020, 0x000E),
        (0x0008, 0x0018), (0x0020, 0x0052), (0x0008, 0x0080), (0x0008, 0x0020),
        (0x0010, 0x0030), (0x0008, 0x0050), (0x0008, 0x0090)]
for path in sys.argv[1:]:
    out = {"path": path, "values": []}
    try:
        ds = pydicom.dcmread(path, force=True)
        for t in TAGS:
            if t not in ds:
                continue
            el = ds[t]
            raw = ds.get_item(t).value
            if isinstance(raw, bytes):
                out["values"].append({"tag": "%04X%04X" % t, "raw": raw.hex()})
            v = el.value
            if v is None:
                continue
            for s in (v if isinstance(v, (list, pydicom.multival.MultiValue)) else [v]):
                s = str(s).strip()
                if s:
                    out["values"].append({"tag": "%04X%04X" % t, "text": s})
    except Exception as e:
        out["error"] = type(e).__name__
    print(json.dumps(out, ensure_ascii=False))
