"""Reading a data folder's tables (skinml.data.tables): text columns, lower-cased names, and DataValidationError."""

from pathlib import Path

import pandas as pd
import pytest

from skinml.core.errors import UserError
from skinml.data.tables import DataValidationError, first_line_not_utf8, read_head, read_table


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_table_is_read_as_text_with_lower_cased_stripped_names(tmp_path):
    csv = write(tmp_path / "meta.csv", b" Image_ID ,DX,Age\nISIC_007,mel,045\nISIC_008,,30\n")
    table = read_table(csv)
    assert list(table.columns) == ["image_id", "dx", "age"]
    assert table["image_id"].tolist() == ["ISIC_007", "ISIC_008"]
    assert table.loc[0, "age"] == "045"  # text: no number parsing drops the leading zero
    assert pd.isna(table.loc[1, "dx"])  # an empty cell is missing
    assert table.attrs["original_columns"] == {"image_id": "Image_ID", "dx": "DX", "age": "Age"}


def test_na_like_words_stay_text(tmp_path):
    csv = write(tmp_path / "meta.csv", b"image_id,sex\na,NA\nb,null\nc,None\n")
    assert read_table(csv)["sex"].tolist() == ["NA", "null", "None"]  # only an empty cell is missing


def test_rows_limits_what_is_read(tmp_path):
    csv = write(tmp_path / "meta.csv", b"a,b\n" + b"".join(f"{i},{i}\n".encode() for i in range(50)))
    assert len(read_table(csv)) == 50 and len(read_table(csv, rows=7)) == 7
    assert read_head(csv)["a"].tolist() == [str(i) for i in range(20)]
    assert len(read_head(csv, rows=3)) == 3


def test_a_line_that_is_not_utf8_is_named(tmp_path):
    csv = write(tmp_path / "latin.csv", b"image_id,dx\nISIC_1,mel\nISIC_2,n\xe9vus\n")
    assert first_line_not_utf8(csv) == 3
    with pytest.raises(DataValidationError) as caught:
        read_table(csv)
    message = str(caught.value)
    assert "latin.csv" in message and "line 3 is not UTF-8 text (save the file as UTF-8)" in message
    assert "\n" not in message
    assert caught.value.source == str(csv) and len(caught.value.problems) == 1


def test_a_utf8_file_has_no_bad_line(tmp_path):
    assert first_line_not_utf8(write(tmp_path / "ok.csv", "a,b\né,ü\n".encode())) == 0


def test_an_empty_file_is_not_a_readable_csv(tmp_path):
    csv = write(tmp_path / "empty.csv", b"")
    with pytest.raises(DataValidationError, match=r"empty\.csv: not a readable CSV \(No columns to parse"):
        read_table(csv)


def test_a_row_with_too_many_fields_is_one_line_naming_the_file_and_line(tmp_path):
    csv = write(tmp_path / "ragged.csv", b"a,b\n1,2\n3,4,5\n")
    with pytest.raises(DataValidationError) as caught:
        read_table(csv)
    message = str(caught.value)
    assert "ragged.csv" in message and "not a readable CSV" in message and "line 3" in message
    assert "\n" not in message


def test_a_row_with_too_many_fields_names_the_file_and_line(tmp_path):
    csv = write(tmp_path / "ragged.csv", b"a,b\n1,2\n3,4,5\n")
    with pytest.raises(DataValidationError) as caught:
        read_table(csv)
    message = str(caught.value)
    assert "ragged.csv: not a readable CSV" in message and "Expected 2 fields in line 3, saw 3" in message


def test_read_head_falls_back_to_the_header_when_the_rows_cannot_be_read(tmp_path):
    ragged = write(tmp_path / "ragged.csv", b"Image_ID, DX\n1,2\n3,4,5\n")
    head = read_head(ragged)
    assert list(head.columns) == ["image_id", "dx"] and head.empty
    latin = write(tmp_path / "latin.csv", b"image_id,dx\nISIC_1,n\xe9vus\n")
    assert list(read_head(latin).columns) == ["image_id", "dx"]


def test_read_head_reads_only_its_rows_so_a_bad_line_further_down_goes_unseen(tmp_path):
    rows = b"".join(f"{i},{i}\n".encode() for i in range(30))
    csv = write(tmp_path / "late.csv", b"a,b\n" + rows + b"1,2,3\n")
    assert len(read_head(csv)) == 20
    with pytest.raises(DataValidationError, match="line 32"):
        read_table(csv)


def test_one_problem_is_the_message_naming_its_source_once():
    named = DataValidationError("/data/meta.csv", ["/data/meta.csv: row 4: no image_id"])
    assert str(named) == "/data/meta.csv: row 4: no image_id"
    unnamed = DataValidationError(Path("/data/meta.csv"), ["row 4: no image_id"])
    assert str(unnamed) == "/data/meta.csv: row 4: no image_id"
    assert unnamed.source == "/data/meta.csv" and unnamed.problems == ["row 4: no image_id"]


def test_many_problems_show_the_first_five_and_count_the_rest():
    problems = [f"row {i}: bad" for i in range(8)]
    error = DataValidationError("meta.csv", problems)
    assert str(error) == (
        "meta.csv: 8 problems: row 0: bad; row 1: bad; row 2: bad; row 3: bad; row 4: bad; and 3 more"
    )
    assert error.problems == problems
    few = DataValidationError("meta.csv", ["a", "b"])
    assert str(few) == "meta.csv: 2 problems: a; b"


def test_a_validation_error_is_a_user_error_and_a_value_error():
    error = DataValidationError("x", ["y"])
    assert isinstance(error, UserError) and isinstance(error, ValueError)
