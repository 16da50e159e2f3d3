import BoxcarCharts
import BoxcarModel

// The frame every page of the agent's shares: one HTML document with its own small stylesheet,
// no script, no font or file from elsewhere (machines are often offline), readable on a laptop
// screen and in a text browser.

public enum HTMLDocument {
    /// A whole page. `refresh`: seconds after which the browser loads it again (a live run's).
    public static func page(title: String, body: String, refresh: Int? = nil, signedIn: Bool = false) -> String {
        let meta = refresh.map { "<meta http-equiv=\"refresh\" content=\"\($0)\">\n" } ?? ""
        // Signed in through the form: the way out (a POST, so a link elsewhere cannot sign one out).
        let signOut = signedIn ? """
            <form class="signout" method="post" action="/logout"><button type="submit">Sign out</button></form>
            """ : ""
        return """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            \(meta)<title>\(escape(title)) · Boxcar</title>
            <style>\(style)</style>
            </head>
            <body>
            <header><a class="home" href="/">Boxcar</a>\(signOut)</header>
            <main>
            \(body)
            </main>
            </body>
            </html>

            """
    }

    /// Text made safe inside an element or a quoted attribute (as the charts' SVG is).
    public static func escape(_ text: some StringProtocol) -> String { Markup.escape(text) }

    /// A query string's value (or a path segment's) percent-encoded: only unreserved characters
    /// stay as they are.
    public static func percentEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + [byte].hexString.uppercased()
            }
        }
        return out
    }

    /// The fields of an `application/x-www-form-urlencoded` text (a form's body, a query string),
    /// in order: `+` is a space, `%XX` a byte; a field without `=` has an empty value.
    public static func formFields(_ text: String) -> [(name: String, value: String)] {
        text.split(separator: "&", omittingEmptySubsequences: true).map { field in
            let parts = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (decode(parts[0], plusIsSpace: true), parts.count > 1 ? decode(parts[1], plusIsSpace: true) : "")
        }
    }

    /// A path segment's `%XX` as the bytes they stand for (`+` stays).
    public static func percentDecode(_ text: String) -> String {
        decode(Substring(text), plusIsSpace: false)
    }

    private static func decode(_ text: Substring, plusIsSpace: Bool) -> String {
        var bytes: [UInt8] = []
        var utf8 = text.utf8[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "+") && plusIsSpace {
                bytes.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%"), utf8.count >= 2, utf8.prefix(2).allSatisfy(Self.isHexDigit),
                let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte | 0x20)
    }

    static let style = """
        body{margin:0;font:14px/1.45 system-ui,-apple-system,"DejaVu Sans",Helvetica,Arial,sans-serif;color:#1d1d1f;background:#f6f7f9}\
        header{display:flex;align-items:center;gap:1em;padding:.6em 1.5em;background:#1f2937}\
        header .home{color:#fff;font-weight:bold;text-decoration:none;font-size:16px}\
        header .signout{margin-left:auto}\
        main{max-width:1100px;margin:0 auto;padding:1em 1.5em 3em}\
        h1{font-size:22px;margin:.4em 0}h2{font-size:17px;margin:1.6em 0 .5em}\
        table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}\
        th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #e3e5e8;vertical-align:top}\
        th{background:#eef0f3;font-weight:600}\
        td.number{text-align:right;font-variant-numeric:tabular-nums}\
        code,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px;word-break:break-all}\
        .chart{background:#fff;border:1px solid #e3e5e8;margin:.5em 0}.chart svg{display:block;width:100%;height:auto}\
        .live{display:inline-block;padding:0 .5em;border-radius:.7em;background:#d1fae5;color:#065f46;font-size:12px;font-weight:600}\
        .muted{color:#6b7280}.problem{color:#b00020}\
        form.query{display:flex;flex-wrap:wrap;gap:.6em;align-items:end;margin:.5em 0}\
        form.query label{display:flex;flex-direction:column;font-size:12px;color:#4b5563}\
        input,select,button{font:inherit;padding:.25em .5em}\
        .login{max-width:360px;margin:4em auto;background:#fff;padding:1.5em;border:1px solid #e3e5e8}\
        .login input{width:100%;box-sizing:border-box;margin:.5em 0 1em}
        """
}
