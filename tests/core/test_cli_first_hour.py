"""A new user's first hour (issue 13), as a person sees it: the console script in a subprocess
against ``trackops sandbox`` (the sandbox and config helpers of ``test_cli``)."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli import (  # noqa: F401  (sandbox_url, smtp: fixtures used by `config`)
    Mailbox,
    assert_one_error_line,
    config,
    sandbox_url,
    smtp,
    trackops_process,
    write_config,
)

# --------------------------------------------------------------------------- carriers by name


def test_carriers_name_says_which_carriers_need_an_extra_param(tmp_path: Path) -> None:
    config_file = tmp_path / "trackops.toml"
    config_file.write_text("", encoding="utf-8")
    result = trackops_process("carriers", "postnl", config=config_file)
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].split() == ["14041", "PostNL", "NL"]
    assert "needs destination country" in lines[1] and "--param, e.g. 'FR'" in lines[1]
    assert "accepts postal code" in lines[2]
    assert lines[3].split()[:2] == ["14044", "PostNL"]  # International Mail needs nothing

    shown = json.loads(trackops_process("carriers", "GLS", "--json", config=config_file).out)
    gls = {row["key"]: row for row in shown}
    assert gls[100005]["params"] == [
        {"kind": "postal_code", "label": "postal code", "required": True, "sample": ""}
    ]
    assert gls[101070]["params"] == []  # GLS (DE)


def test_carriers_with_no_match_exits_1_with_a_message(tmp_path: Path) -> None:
    config_file = tmp_path / "trackops.toml"
    config_file.write_text("", encoding="utf-8")
    result = trackops_process("carriers", "zzqx", "carrier", config=config_file)
    assert_one_error_line(result, "no carrier matches 'zzqx carrier'", code=1)
    assert result.out == ""


def test_register_takes_carrier_names_on_the_command_line_and_in_csv(
    config: Path,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    by_name = trackops_process(
        "register", "RZ000000001CN", "--carrier", "china post", "--json", config=config
    )
    assert by_name.code == 0, by_name
    csv_file = tmp_path / "orders.csv"
    csv_file.write_text(
        "number,carrier,param\n"
        "RZ000000002CN,UPS,\n"
        "RZ000000003CN,DHL Paket,10115\n"
        "RZ000000004CN,fedex®,\n",  # three carriers' names contain it
        encoding="utf-8",
    )
    from_file = trackops_process("register", "--file", str(csv_file), config=config)
    assert from_file.code == 1, from_file
    assert sorted(from_file.out.splitlines()) == [
        "registered RZ000000002CN",
        "registered RZ000000003CN",
    ]
    line = assert_one_error_line(from_file, "line 4:", "'fedex®' is ambiguous")
    assert "FedEx® Poland (100261)" in line

    rows = {
        r["number"]: r for r in json.loads(trackops_process("list", "--json", config=config).out)
    }
    assert rows["RZ000000001CN"]["carrier"] == 3011
    assert rows["RZ000000002CN"]["carrier"] == 100002
    assert rows["RZ000000003CN"]["carrier"] == 7041
    assert "RZ000000004CN" not in rows

    ambiguous = trackops_process("register", "RZ000000005CN", "--carrier", "dhl e", config=config)
    assert_one_error_line(ambiguous, "argument --carrier: carrier 'dhl e' is ambiguous", code=2)
    assert "DHL eCommerce US (7047)" in ambiguous.err
