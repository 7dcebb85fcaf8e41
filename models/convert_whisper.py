#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model (faster-whisper's model.bin) to whisper.cpp's ggml file.

    python3 models/convert_whisper.py MODEL_BIN ASSETS_DIR OUT

ASSETS_DIR holds mel_filters.npz, gpt2.tiktoken and multilingual.tiktoken from the openai-whisper source
archive (models/fetch.py puts them in models/files/whisper-assets/). The output is deterministic: fetch.py
checks it against the sha256 in manifest.toml.

The conversion is a rename and split of the tensors, written in the layout of whisper.cpp's own converter:
  */self_attention/linear_0   fused Q|K|V, split in three (the key has no bias)
  decoder */attention/linear_1  fused K|V of the cross-attention, split in two
  layer_norm/gamma,beta       .weight/.bias
  ffn/linear_0, linear_1      mlp.0, mlp.2
  position_encodings          positional_embedding;  embeddings  token_embedding
Matrices are stored as float16, vectors (and the positional embeddings, conv biases) as float32.

Python standard library only: the models are float16 already, so matrices are copied as bytes and only the
small tensors are widened to float32 (struct's 'e' format).
"""

import ast
import base64
import os
import re
import struct
import sys
import tempfile
import zipfile
from array import array

GGML_MAGIC = 0x67676D6C
GGML_FTYPE_F16 = 1

# CTranslate2 DataType: code -> (name, item size)
CT2_DTYPES = {0: ("float32", 4), 1: ("int8", 1), 2: ("int16", 2), 3: ("int32", 4), 4: ("float16", 2), 5: ("bfloat16", 2)}

# Tensors kept in float32 although they have two dimensions (as whisper.cpp's converter does).
FLOAT32_MATRICES = {
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
}


class ConversionError(Exception):
    pass


class Tensor:
    """Raw little-endian tensor data with its CTranslate2 dtype and shape (row-major)."""

    __slots__ = ("dtype", "shape", "data")

    def __init__(self, dtype, shape, data):
        self.dtype = dtype
        self.shape = tuple(shape)
        self.data = data

    @property
    def count(self):
        n = 1
        for d in self.shape:
            n *= d
        return n

    def rows(self, start, stop):
        """Rows start..stop of the first dimension."""
        row = self.count // self.shape[0] if self.shape[0] else 0
        size = CT2_DTYPES[self.dtype][1]
        return Tensor(self.dtype, (stop - start,) + self.shape[1:], self.data[start * row * size : stop * row * size])

    def reshaped(self, shape):
        return Tensor(self.dtype, shape, self.data)

    def scalar(self):
        fmt = {0: "<f", 1: "<b", 2: "<h", 3: "<i"}.get(self.dtype)
        if fmt is None or len(self.data) < struct.calcsize(fmt):
            return None
        return int(struct.unpack_from(fmt, self.data)[0])

    def float32_bytes(self):
        if self.dtype == 0:
            return bytes(self.data)
        if self.dtype == 4:
            return array("f", struct.unpack(f"<{self.count}e", self.data)).tobytes()
        raise ConversionError(f"cannot convert a {CT2_DTYPES[self.dtype][0]} tensor (quantized models are not supported)")

    def float16_bytes(self):
        if self.dtype == 4:
            return bytes(self.data)
        if self.dtype == 0:
            values = struct.unpack(f"<{self.count}f", self.data)
            try:
                return struct.pack(f"<{self.count}e", *values)
            except OverflowError:  # numpy would give ±inf; do the same
                inf = float("inf")
                return struct.pack(f"<{self.count}e", *(v if abs(v) <= 65504 else (inf if v > 0 else -inf) for v in values))
        raise ConversionError(f"cannot convert a {CT2_DTYPES[self.dtype][0]} tensor (quantized models are not supported)")


def read_ct2_model(path):
    """Variables of a CTranslate2 model.bin, by name."""
    with open(path, "rb") as f:
        buf = memoryview(f.read())
    pos = 0

    def take(n):
        nonlocal pos
        if pos + n > len(buf):
            raise ConversionError(f"{path}: truncated file")
        chunk = buf[pos : pos + n]
        pos += n
        return chunk

    def u32():
        return struct.unpack("<I", take(4))[0]

    def string():
        n = struct.unpack("<H", take(2))[0]
        return bytes(take(n)).rstrip(b"\0").decode()

    _binary_version = u32()
    spec = string()
    if spec != "WhisperSpec":
        raise ConversionError(f"{path}: not a Whisper model (spec {spec!r})")
    _revision = u32()
    variables = {}
    for _ in range(u32()):
        name = string()
        rank = take(1)[0]
        shape = [u32() for _ in range(rank)]
        dtype = take(1)[0]
        nbytes = u32()
        if dtype not in CT2_DTYPES:
            raise ConversionError(f"{path}: variable {name} has unknown dtype {dtype}")
        tensor = Tensor(dtype, shape, take(nbytes))
        if tensor.count * CT2_DTYPES[dtype][1] != nbytes:
            raise ConversionError(f"{path}: variable {name}: {nbytes} bytes for shape {shape}")
        variables[name] = tensor
    # Aliases and other metadata after the variables are not needed.
    return variables


def whisper_tensors(V, n_audio_state, n_state, enc_layers, dec_layers):
    """CTranslate2 variables renamed to openai-whisper names, in whisper.cpp's converter order."""
    T = {}

    def get(name):
        if name not in V:
            raise ConversionError(f"model has no variable {name}")
        return V[name]

    def layer_norm(src, dst):
        T[dst + ".weight"] = get(src + "/gamma")
        T[dst + ".bias"] = get(src + "/beta")

    def linear(src, dst):
        T[dst + ".weight"] = get(src + "/weight")
        T[dst + ".bias"] = get(src + "/bias")

    def split(src, dsts, d):
        w, b = get(src + "/weight"), get(src + "/bias")
        for i, dst in enumerate(dsts):
            T[dst + ".weight"] = w.rows(i * d, (i + 1) * d)
            if not dst.endswith(".key"):
                T[dst + ".bias"] = b.rows(i * d, (i + 1) * d)

    T["encoder.conv1.weight"] = get("encoder/conv1/weight")
    T["encoder.conv1.bias"] = get("encoder/conv1/bias")
    T["encoder.conv2.weight"] = get("encoder/conv2/weight")
    T["encoder.conv2.bias"] = get("encoder/conv2/bias")
    T["encoder.positional_embedding"] = get("encoder/position_encodings/encodings")
    for i in range(enc_layers):
        p, q = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        layer_norm(p + "/self_attention/layer_norm", q + ".attn_ln")
        split(p + "/self_attention/linear_0", [q + ".attn.query", q + ".attn.key", q + ".attn.value"], n_audio_state)
        linear(p + "/self_attention/linear_1", q + ".attn.out")
        layer_norm(p + "/ffn/layer_norm", q + ".mlp_ln")
        linear(p + "/ffn/linear_0", q + ".mlp.0")
        linear(p + "/ffn/linear_1", q + ".mlp.2")
    layer_norm("encoder/layer_norm", "encoder.ln_post")
    T["decoder.token_embedding.weight"] = get("decoder/embeddings/weight")
    T["decoder.positional_embedding"] = get("decoder/position_encodings/encodings")
    for i in range(dec_layers):
        p, q = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        layer_norm(p + "/self_attention/layer_norm", q + ".attn_ln")
        split(p + "/self_attention/linear_0", [q + ".attn.query", q + ".attn.key", q + ".attn.value"], n_state)
        linear(p + "/self_attention/linear_1", q + ".attn.out")
        layer_norm(p + "/attention/layer_norm", q + ".cross_attn_ln")
        linear(p + "/attention/linear_0", q + ".cross_attn.query")
        split(p + "/attention/linear_1", [q + ".cross_attn.key", q + ".cross_attn.value"], n_state)
        linear(p + "/attention/linear_2", q + ".cross_attn.out")
        layer_norm(p + "/ffn/layer_norm", q + ".mlp_ln")
        linear(p + "/ffn/linear_0", q + ".mlp.0")
        linear(p + "/ffn/linear_1", q + ".mlp.2")
    layer_norm("decoder/layer_norm", "decoder.ln")
    return T


def read_mel_filters(npz_path, n_mels):
    """(rows, cols, float32 bytes) of mel_<n_mels> from openai-whisper's mel_filters.npz."""
    member = f"mel_{n_mels}.npy"
    with zipfile.ZipFile(npz_path) as z:
        if member not in z.namelist():
            raise ConversionError(f"{npz_path} has no {member}")
        raw = z.read(member)
    if raw[:6] != b"\x93NUMPY":
        raise ConversionError(f"{npz_path}:{member} is not a .npy array")
    major = raw[6]
    if major == 1:
        (hlen,), start = struct.unpack_from("<H", raw, 8), 10
    else:
        (hlen,), start = struct.unpack_from("<I", raw, 8), 12
    header = ast.literal_eval(raw[start : start + hlen].decode("latin1"))
    data = raw[start + hlen :]
    shape = header["shape"]
    if header.get("fortran_order") or len(shape) != 2:
        raise ConversionError(f"{npz_path}:{member}: unexpected layout {header}")
    if header["descr"] == "<f4":
        values = data[: shape[0] * shape[1] * 4]
    elif header["descr"] == "<f8":
        values = array("f", array("d", data[: shape[0] * shape[1] * 8])).tobytes()
    else:
        raise ConversionError(f"{npz_path}:{member}: unexpected dtype {header['descr']}")
    return shape[0], shape[1], values


def read_tiktoken(path):
    with open(path, "rb") as f:
        return [base64.b64decode(line.split()[0]) for line in f if line.strip()]


def convert(model_path, assets_dir, out):
    """Write the ggml model to the binary file object `out`; returns a one-line summary."""
    if sys.byteorder != "little":
        raise ConversionError("this converter writes native floats and needs a little-endian machine")
    V = read_ct2_model(model_path)
    enc_layers = len({k.split("/")[1] for k in V if re.match(r"encoder/layer_\d+/", k)})
    dec_layers = len({k.split("/")[1] for k in V if re.match(r"decoder/layer_\d+/", k)})
    n_vocab, n_state = V["decoder/embeddings/weight"].shape
    n_audio_ctx, n_audio_state = V["encoder/position_encodings/encodings"].shape
    n_text_ctx = V["decoder/position_encodings/encodings"].shape[0]
    n_mels = V["encoder/conv1/weight"].shape[1]

    def heads(name, state):
        value = V[name].scalar() if name in V else None
        return value or state // 64

    n_audio_head = heads("encoder/num_heads", n_audio_state)
    n_text_head = heads("decoder/num_heads", n_state)
    T = whisper_tensors(V, n_audio_state, n_state, enc_layers, dec_layers)

    multilingual = n_vocab >= 51865
    mel_rows, mel_cols, mel_bytes = read_mel_filters(os.path.join(assets_dir, "mel_filters.npz"), n_mels)
    tokens = read_tiktoken(os.path.join(assets_dir, "multilingual.tiktoken" if multilingual else "gpt2.tiktoken"))

    out.write(struct.pack("<i", GGML_MAGIC))
    hparams = (n_vocab, n_audio_ctx, n_audio_state, n_audio_head, enc_layers,
               n_text_ctx, n_state, n_text_head, dec_layers, n_mels, GGML_FTYPE_F16)
    out.write(struct.pack(f"<{len(hparams)}i", *hparams))
    out.write(struct.pack("<ii", mel_rows, mel_cols))
    out.write(mel_bytes)
    out.write(struct.pack("<i", len(tokens)))
    for token in tokens:
        out.write(struct.pack("<i", len(token)))
        out.write(token)
    for name, tensor in T.items():
        if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
            tensor = tensor.reshaped((tensor.shape[0], 1))
        as_float32 = len(tensor.shape) < 2 or name in FLOAT32_MATRICES
        data = tensor.float32_bytes() if as_float32 else tensor.float16_bytes()
        encoded = name.encode()
        out.write(struct.pack("<iii", len(tensor.shape), len(encoded), 0 if as_float32 else 1))
        for dim in reversed(tensor.shape):
            out.write(struct.pack("<i", dim))
        out.write(encoded)
        out.write(data)
    return (f"vocab={n_vocab} audio_ctx={n_audio_ctx} state={n_audio_state}/{n_state} heads={n_audio_head}/{n_text_head} "
            f"layers={enc_layers}/{dec_layers} text_ctx={n_text_ctx} mels={n_mels} tensors={len(T)} tokens={len(tokens)}")


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    model_path, assets_dir, out_path = argv
    out_dir = os.path.dirname(os.path.abspath(out_path))
    fd, tmp = tempfile.mkstemp(prefix=".nexent-tmp-", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            summary = convert(model_path, assets_dir, out)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private
        os.replace(tmp, out_path)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"wrote {out_path}: {summary}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (ConversionError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
