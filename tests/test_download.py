import io
import tarfile
import zipfile

import pytest

from bench.datasets import download as dl


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return path


def test_archive_with_right_checksum_is_extracted(tmp_path):
    archive = _zip(tmp_path / "EuroSAT_RGB.zip", {"EuroSAT_RGB/Forest/Forest_1.jpg": b"jpeg bytes"})
    source = dl.Source(archive.as_uri(), dl.sha256_of(archive), "eurosat")
    root = tmp_path / "data"
    assert dl.fetch(source, root) == root / "eurosat"
    assert (root / "eurosat" / "EuroSAT_RGB" / "Forest" / "Forest_1.jpg").read_bytes() == b"jpeg bytes"
    assert dl.fetch(source, root) == root / "eurosat"  # verified copy reused, no second download


def test_wrong_checksum_is_refused_before_extraction(tmp_path):
    archive = _zip(tmp_path / "a.zip", {"x/y.jpg": b"data"})
    source = dl.Source(archive.as_uri(), "0" * 64, "eurosat")
    with pytest.raises(dl.DownloadError, match=f"sha256 mismatch: expected {'0' * 64}, found"):
        dl.fetch(source, tmp_path / "data")
    assert not (tmp_path / "data" / "eurosat").exists()
    assert not (tmp_path / "data" / ".downloads" / "a.zip").exists()


def test_member_escaping_the_target_is_refused(tmp_path):
    archive = _zip(tmp_path / "evil.zip", {"../../escaped.txt": b"pwned"})
    source = dl.Source(archive.as_uri(), dl.sha256_of(archive), "eurosat")
    with pytest.raises(dl.DownloadError, match="outside"):
        dl.fetch(source, tmp_path / "data")
    assert not list(tmp_path.rglob("escaped.txt"))


def test_tar_symlink_member_is_refused(tmp_path):
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as bundle:
        info = tarfile.TarInfo("data/link")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        bundle.addfile(info)
        payload = tarfile.TarInfo("data/file.txt")
        payload.size = 2
        bundle.addfile(payload, io.BytesIO(b"ok"))
    with pytest.raises(dl.DownloadError, match="data/link"):
        dl.extract(archive, tmp_path / "out")


def test_plain_file_source_and_partial_download(tmp_path):
    image = tmp_path / "kodim01.png"
    image.write_bytes(b"png" * 1000)
    root = tmp_path / "data"
    (root / ".downloads").mkdir(parents=True)
    (root / ".downloads" / "kodim01.png.part").write_bytes(b"stale partial")  # a killed earlier attempt
    source = dl.Source(image.as_uri(), dl.sha256_of(image), "kodak/kodim01.png")
    assert dl.fetch(source, root).read_bytes() == image.read_bytes()


def test_every_download_source_has_a_full_sha256():
    for name, sources in dl.SOURCES.items():
        for source in sources():
            assert len(source.sha256) == 64 and source.url.startswith("https://"), name
    assert len(dl.SOURCES["kodak"]()) == 24


def test_manual_only_dataset_says_where_to_get_it(tmp_path):
    with pytest.raises(dl.DownloadError, match="lehaifeng/RSI-CB"):
        dl.download("rsi-cb256", tmp_path)


def test_an_offline_download_is_one_line_saying_where_to_put_the_file(tmp_path, capsys, monkeypatch):
    import urllib.error
    import urllib.request

    from bench.cli import main

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert main(["datasets", "download", "kodak", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot fetch" in err and "put it at" in err and "Traceback" not in err
