"""The Models card's TF.js download, clicked in a real browser: one zip, model.json + its shard."""

import json
import math
import zipfile


def test_models_card_downloads_a_tfjs_zip(page):
    page.open()
    link = page.page.locator("#model-table a", has_text="TF.js").first
    link.wait_for(timeout=20_000)
    assert link.get_attribute("href").endswith("/tfjs.zip")
    with page.page.expect_download() as download:
        link.click()
    name = download.value.suggested_filename
    assert name.endswith("-tfjs.zip")
    model = name[:-len("-tfjs.zip")]
    with zipfile.ZipFile(download.value.path()) as zf:
        assert zf.namelist() == [f"{model}/model.json", f"{model}/group1-shard1of1.bin"]
        manifest = json.loads(zf.read(f"{model}/model.json"))["weightsManifest"][0]
        assert manifest["paths"] == ["group1-shard1of1.bin"]
        assert len(zf.read(f"{model}/group1-shard1of1.bin")) == sum(4 * math.prod(w["shape"]) for w in manifest["weights"])
    assert page.errors == []
