#!/usr/bin/env python3
"""Writes one large document per binary format from a BEIR corpus, for the parse-throughput benchmark
(bench/src/ingest.rs). Each holds the same abstracts, laid out as a user's file of that kind would be:
headings and paragraphs, slides, sheet rows, chapters, an e-mail body.

    python make_documents.py CORPUS.jsonl OUT_DIR DOCUMENTS
"""

import email.message
import json
import pathlib
import sys


def main():
    corpus, out, count = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    docs = []
    with corpus.open(encoding="utf-8") as lines:
        for line in lines:
            doc = json.loads(line)
            if doc.get("text"):
                docs.append((doc.get("title") or doc["_id"], doc["text"]))
            if len(docs) == count:
                break

    import docx

    document = docx.Document()
    for title, text in docs:
        document.add_heading(title, level=2)
        document.add_paragraph(text)
    document.save(out / "corpus.docx")

    from pptx import Presentation

    deck = Presentation()
    for title, text in docs:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = text
    deck.save(out / "corpus.pptx")

    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["title", "abstract"])
    for title, text in docs:
        sheet.append([title, text])
    workbook.save(out / "corpus.xlsx")

    import xlwt

    old = xlwt.Workbook()
    old_sheet = old.add_sheet("corpus")
    for row, (title, text) in enumerate([("title", "abstract"), *docs]):
        old_sheet.write(row, 0, title[:32000])
        old_sheet.write(row, 1, text[:32000])
    old.save(str(out / "corpus.xls"))

    from odf.opendocument import OpenDocumentSpreadsheet, OpenDocumentText
    from odf.table import Table, TableCell, TableRow
    from odf.text import H, P

    spreadsheet = OpenDocumentSpreadsheet()
    table = Table(name="corpus")
    for title, text in docs:
        row = TableRow()
        for value in (title, text):
            cell = TableCell(valuetype="string")
            cell.addElement(P(text=value))
            row.addElement(cell)
        table.addElement(row)
    spreadsheet.spreadsheet.addElement(table)
    spreadsheet.save(str(out / "corpus.ods"))

    text_document = OpenDocumentText()
    for title, text in docs:
        text_document.text.addElement(H(outlinelevel=2, text=title))
        text_document.text.addElement(P(text=text))
    text_document.save(str(out / "corpus.odt"))

    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    pdf.add_page()
    for title, text in docs:
        safe = lambda value: value.encode("latin-1", "replace").decode("latin-1")
        pdf.multi_cell(0, 5, safe(title), new_x="LMARGIN", new_y="NEXT")
        pdf.multi_cell(0, 5, safe(text), new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(out / "corpus.pdf"))

    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("nexent-bench-corpus")
    book.set_title("Corpus")
    book.set_language("en")
    chapters = []
    for start in range(0, len(docs), 50):
        chapter = epub.EpubHtml(title=f"Part {start // 50 + 1}", file_name=f"part{start // 50 + 1}.xhtml", lang="en")
        body = "".join(f"<h2>{t}</h2><p>{x}</p>" for t, x in docs[start : start + 50])
        chapter.content = f"<html><body>{body}</body></html>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = chapters
    epub.write_epub(str(out / "corpus.epub"), book)

    message = email.message.EmailMessage()
    message["Subject"] = "Corpus digest"
    message["From"] = "Bench <bench@example.org>"
    message["To"] = "Reader <reader@example.org>"
    message.set_content("\n\n".join(f"{t}\n{x}" for t, x in docs))
    (out / "corpus.eml").write_bytes(bytes(message))

    def rtf_escape(value):
        escaped = value.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}")
        return "".join(c if ord(c) < 128 else f"\\u{ord(c) if ord(c) < 32768 else ord(c) - 65536}?" for c in escaped)

    rtf = "{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Times;}}\\f0\n"
    rtf += "".join(f"{{\\b {rtf_escape(t)}}}\\par\n{rtf_escape(x)}\\par\n" for t, x in docs) + "}"
    (out / "corpus.rtf").write_text(rtf, encoding="ascii")


if __name__ == "__main__":
    main()
