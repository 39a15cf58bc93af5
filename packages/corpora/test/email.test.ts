import { describe, expect, it } from "vitest";

import { decodeCharset, decodeEncodedWords, decodeQuotedPrintable, parseEmail, stripHtml } from "../src/index.js";

const crlf = (s: string) => s.replace(/\n/g, "\r\n");

describe("parseEmail", () => {
  it("decodes a multipart/alternative message: quoted-printable text/plain wins over HTML", () => {
    const raw = crlf(
      [
        "From someone@example.org  Thu Aug 22 12:36:23 2002",
        "Return-Path: <a@example.org>",
        "Received: from a by b;",
        "\tThu, 22 Aug 2002 07:36:16 -0400",
        "Received: from c by d",
        "Subject: =?iso-8859-1?Q?Caf=E9_cr=E8me?= and =?UTF-8?B?4oKsIDEw?=",
        "From: =?utf-8?q?Jos=C3=A9?= <jose@example.org>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/alternative; boundary="==b1=="',
        "",
        "This is a multi-part message in MIME format.",
        "",
        "--==b1==",
        "Content-Type: text/plain; charset=iso-8859-1",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        "Un caf=E9 cr=E8me co=FBte 3 =A4, une tr=E8s longue ligne coup=",
        "=E9e en deux.",
        "a=3Db",
        "--==b1==",
        "Content-Type: text/html; charset=utf-8",
        "",
        "<p>Should not be used</p>",
        "--==b1==--",
        "epilogue",
      ].join("\n"),
    );
    const m = parseEmail(Buffer.from(raw, "latin1"));
    expect(m.textSource).toBe("plain");
    expect(m.text).toBe("Un café crème coûte 3 ¤, une très longue ligne coupée en deux.\na=b");
    expect(m.headers["subject"]).toBe("Café crème and € 10");
    expect(m.headers["from"]).toBe("José <jose@example.org>");
    expect(m.headers["received"]).toBe("from a by b; Thu, 22 Aug 2002 07:36:16 -0400\nfrom c by d");
    expect(m.headers["content-type"]).toBe('multipart/alternative; boundary="==b1=="');
    expect(Object.keys(m.headers)).not.toContain("from someone@example.org");
  });

  it("decodes base64 parts and joins the text/plain parts of multipart/mixed, skipping attachments", () => {
    const utf8 = Buffer.from("Grüße aus Köln — 東京\nzweite Zeile", "utf8").toString("base64").replace(/(.{20})/g, "$1\n");
    const raw = [
      "Subject: mixed",
      "Content-Type: multipart/mixed; boundary=outer",
      "",
      "--outer",
      "Content-Type: multipart/alternative; boundary=\"inner\"",
      "",
      "--inner",
      "Content-Type: text/plain; charset=\"utf-8\"",
      "Content-Transfer-Encoding: base64",
      "",
      utf8,
      "--inner",
      "Content-Type: text/html; charset=utf-8",
      "",
      "<b>html version</b>",
      "--inner--",
      "--outer",
      "Content-Type: text/plain; charset=us-ascii",
      "",
      "second part",
      "--outer",
      "Content-Type: text/plain; name=notes.txt",
      "Content-Disposition: attachment; filename=notes.txt",
      "",
      "attached file, not body",
      "--outer",
      "Content-Type: image/gif",
      "Content-Transfer-Encoding: base64",
      "",
      "R0lGODlhAQABAAAAACw=",
      "--outer--",
    ].join("\n");
    const m = parseEmail(raw);
    expect(m.textSource).toBe("plain");
    expect(m.text).toBe("Grüße aus Köln — 東京\nzweite Zeile\n\nsecond part");
  });

  it("falls back to text/html with tags stripped and entities decoded", () => {
    const html = [
      "<html><head><title>t</title><style>p { color: red }</style></head><body>",
      "<!-- hidden -->",
      "<h1>Big&nbsp;Offer</h1><p>Price: &pound;5 &amp; free&#33; &#x2014; now</p>",
      "<script>var x = '<p>no</p>';</script>",
      "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>line<br>break",
      "</body></html>",
    ].join("\n");
    const raw = [
      "Subject: html only",
      "Content-Type: multipart/alternative; boundary=\"b\"",
      "",
      "--b",
      "Content-Type: text/html; charset=\"windows-1252\"",
      "Content-Transfer-Encoding: quoted-printable",
      "",
      html.replace("now", "now =80").replace("Price:", "Pri=\nce:"),
      "--b--",
    ].join("\n");
    const m = parseEmail(raw);
    expect(m.textSource).toBe("html");
    expect(m.text).toBe("Big Offer\n\nPrice: £5 & free! — now €\n\na b\n\nc\n\nline\nbreak");
  });

  it("reads a single-part base64 body, a text/plain body that is HTML, and message/rfc822 parts", () => {
    const b64 = parseEmail(["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: BASE64", "", Buffer.from("héllo\r\nworld\r\n").toString("base64")].join("\n"));
    expect(b64).toMatchObject({ text: "héllo\nworld", textSource: "plain" });
    const disguised = parseEmail("Subject: x\n\n<HTML><BODY>Hello <b>there</b></BODY></HTML>\n");
    expect(disguised).toMatchObject({ text: "Hello there", textSource: "html" });
    const empty = parseEmail("Subject: x\nContent-Type: text/html\n\n<html><body><img src=x></body></html>");
    expect(empty).toMatchObject({ text: "", textSource: "none" });
    const forwarded = parseEmail(
      ["Content-Type: multipart/mixed; boundary=z", "", "--z", "Content-Type: message/rfc822", "", "Subject: inner", "Content-Type: text/plain", "", "inner body", "--z--"].join("\n"),
    );
    expect(forwarded.text).toBe("inner body");
    // no headers at all
    expect(parseEmail("just a body line\nand another").text).toBe("just a body line\nand another");
  });

  it("decodes charsets with TextDecoder and falls back to latin1", () => {
    const latin1 = Buffer.from("Subject: x\n\nna\u00efve caf\u00e9\n", "latin1");
    expect(parseEmail(latin1).text).toBe("naïve café"); // unlabelled, not UTF-8 → latin1
    const koi8 = Buffer.concat([Buffer.from("Content-Type: text/plain; charset=koi8-r\n\n"), Buffer.from([0xf0, 0xd2, 0xc9, 0xd7, 0xc5, 0xd4])]);
    expect(parseEmail(koi8).text).toBe("Привет");
    const bogus = Buffer.concat([Buffer.from("Content-Type: text/plain; charset=x-no-such-charset\n\n"), Buffer.from("caf\u00e9", "latin1")]);
    expect(parseEmail(bogus).text).toBe("café");
    const mislabelled = Buffer.concat([Buffer.from("Content-Type: text/plain; charset=us-ascii\n\n"), Buffer.from("caf\u00e9 ✓", "utf8")]);
    expect(parseEmail(mislabelled).text).toBe("café ✓");
    expect(parseEmail(Buffer.concat([Buffer.from('Content-Type: text/plain; charset="3Diso-8859-1"\n\n'), Buffer.from([0xe9])])).text).toBe("é");
    expect(decodeCharset(Buffer.from([0x80]), "windows-1252")).toBe("€");
    expect(decodeCharset(Buffer.from([0xe9]))).toBe("é");
  });

  it("undoes quoted-printable and encoded words exactly", () => {
    expect(decodeQuotedPrintable("a=3Db=\r\nc = d  \r\n=XYz=").toString("latin1")).toBe("a=bc = d\r\n=XYz=");
    expect(decodeEncodedWords("=?ISO-8859-1?Q?a_b?= =?ISO-8859-1?Q?_c?= plain =?utf-8?B?w6k=?=")).toBe("a b c plain é");
    expect(stripHtml("<p>a&lt;b&gt;&unknown;</p>")).toBe("a<b>&unknown;");
    expect(stripHtml("&#149; item &#8364;&#x1F600;")).toBe("• item €😀");
  });
});
