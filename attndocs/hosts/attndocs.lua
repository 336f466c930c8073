--[[
attndocs.lua: interactive attention figures in pandoc (and Quarto) documents.

    pandoc --lua-filter "$(attndocs pandoc-filter)" page.md -s -o page.html

Every code block with the class `attention` (```` ```{.attention} ```` or ```` ```attention ````)
becomes a figure. Its options come from the block's attributes ({.attention view=model
layer=2}) and from `key: value` lines at the top of the block, as in attndocs's other hosts;
the rest of the block is the text the model reads. Site settings (cache dir, execution mode,
model aliases, strict ...) come from an `attndocs:` map in the document's metadata.

This file only collects and places: it hands every block of the document to the attndocs
command in ONE call (`attndocs pandoc-figures`, a JSON request on standard input), so each
model loads once and the cache and the warnings (file:line) are the ones the other hosts
use. The command answers with a pandoc JSON document holding one Div per block (the figure
HTML or a placeholder; for formats that run no scripts, a still picture of the figure) and,
for HTML, one Div of assets (the stylesheet and the script, added to the page once).

Which command runs: $ATTNDOCS_COMMAND when set (split on spaces, e.g.
"/opt/venv/bin/python -m attndocs.cli"), else `attndocs` on PATH, else
`python3 -m attndocs.cli`. The command is never taken from the document's metadata: a
document you did not write could then run any program.
]]

local CLASS = "attention"
local REQUEST_VERSION = 1

-- JSON encoding of the request: strings, numbers, booleans, lists and string-keyed maps.
local json_escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return json_escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function is_list(t)
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" then
      return false
    end
    n = n + 1
  end
  return n == #t
end

local function json(value)
  local kind = type(value)
  if kind == "string" then
    return json_string(value)
  elseif kind == "number" then
    return tostring(value)
  elseif kind == "boolean" then
    return value and "true" or "false"
  elseif value == nil then
    return "null"
  elseif kind == "table" then
    local parts = {}
    if is_list(value) and (next(value) ~= nil or getmetatable(value) == nil) then
      for _, item in ipairs(value) do
        parts[#parts + 1] = json(item)
      end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(value) do
      keys[#keys + 1] = tostring(k)
    end
    table.sort(keys)
    for _, k in ipairs(keys) do
      parts[#parts + 1] = json_string(k) .. ":" .. json(value[k])
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return json_string(tostring(value))
end

-- A metadata value as plain data: text for inlines and blocks, lists and maps kept.
local function meta_value(value)
  local kind = type(value)
  if kind == "boolean" or kind == "string" or kind == "number" then
    return value
  end
  if kind ~= "table" and kind ~= "userdata" then
    return nil
  end
  local ptype = pandoc.utils.type and pandoc.utils.type(value) or nil
  if ptype == "Inlines" or ptype == "Blocks" or ptype == "Inline" or ptype == "Block" or kind == "userdata" then
    return pandoc.utils.stringify(value)
  end
  if is_list(value) then
    -- pandoc 2.x gives inlines as a plain list of elements: stringify those, keep real lists.
    if ptype == nil and value[1] ~= nil and type(value[1]) == "userdata" then
      return pandoc.utils.stringify(value)
    end
    local out = {}
    for i, item in ipairs(value) do
      out[i] = meta_value(item)
    end
    return out
  end
  local out = {}
  for k, item in pairs(value) do
    out[tostring(k)] = meta_value(item)
  end
  return out
end

local function fail(message)
  io.stderr:write("attndocs: error: " .. message .. "\n")
  os.exit(1)
end

local function on_path(name)
  local sep = package.config:sub(1, 1)
  local list = sep == "\\" and ";" or ":"
  local names = sep == "\\" and { name .. ".exe", name .. ".cmd", name } or { name }
  for dir in (os.getenv("PATH") or ""):gmatch("[^" .. list .. "]+") do
    for _, candidate in ipairs(names) do
      local path = dir .. sep .. candidate
      local handle = io.open(path, "r")
      if handle then
        handle:close()
        return path
      end
    end
  end
  return nil
end

-- The program and its first arguments that run attndocs.
local function attndocs_command()
  local configured = os.getenv("ATTNDOCS_COMMAND")
  if configured and configured:match("%S") then
    local words = {}
    for word in configured:gmatch("%S+") do
      words[#words + 1] = word
    end
    return table.remove(words, 1), words
  end
  local found = on_path("attndocs")
  if found then
    return found, {}
  end
  local python = on_path("python3") or on_path("python")
  if python then
    return python, { "-m", "attndocs.cli" }
  end
  fail(
    "cannot find the attndocs command (not on PATH, and no python3 either): install attndocs "
      .. "(pip install attndocs) in the environment pandoc runs from, or set ATTNDOCS_COMMAND "
      .. "(for example '/path/to/venv/bin/python -m attndocs.cli')"
  )
end

local function is_figure(block)
  return block.classes:includes(CLASS)
end

local function html_output()
  if quarto and quarto.doc and quarto.doc.is_format then
    return quarto.doc.is_format("html:js")
  end
  -- Formats whose readers run the page's scripts. EPUB readers mostly do not.
  return FORMAT:match("^html") ~= nil or FORMAT == "revealjs" or FORMAT == "slidy" or FORMAT == "slideous"
    or FORMAT == "dzslides" or FORMAT == "s5" or FORMAT == "chunkedhtml"
end

local function request_for(doc, blocks)
  local inputs = {}
  for i, name in ipairs(PANDOC_STATE.input_files or {}) do
    inputs[i] = name
  end
  local api = {}
  for i, part in ipairs(PANDOC_API_VERSION) do
    api[i] = part
  end
  return {
    version = REQUEST_VERSION,
    format = FORMAT,
    html = html_output(),
    inputs = inputs,
    ["api-version"] = api,
    verbosity = PANDOC_STATE.verbosity or "WARNING",
    settings = doc.meta.attndocs and meta_value(doc.meta.attndocs) or {},
    blocks = blocks,
  }
end

local function add_header(meta, block)
  local includes = meta["header-includes"]
  if includes == nil then
    meta["header-includes"] = pandoc.MetaList({ pandoc.MetaBlocks({ block }) })
  elseif type(includes) == "table" and is_list(includes) and (pandoc.utils.type == nil or pandoc.utils.type(includes) == "List") and type(includes[1]) ~= "userdata" then
    table.insert(includes, pandoc.MetaBlocks({ block }))
    meta["header-includes"] = includes
  else
    meta["header-includes"] = pandoc.MetaList({ includes, pandoc.MetaBlocks({ block }) })
  end
end

function Pandoc(doc)
  -- 1. Every attention block, in document order.
  local blocks = {}
  doc:walk({
    CodeBlock = function(block)
      if is_figure(block) then
        local attributes = {}
        for key, value in pairs(block.attributes) do
          attributes[key] = value
        end
        local classes = {}
        for _, class in ipairs(block.classes) do
          if class ~= CLASS then
            classes[#classes + 1] = class
          end
        end
        blocks[#blocks + 1] = { text = block.text, identifier = block.identifier, classes = classes, attributes = attributes }
      end
    end,
  })
  if #blocks == 0 then
    return nil -- no figures: no assets, no process
  end

  -- 2. One call to attndocs for the whole document.
  local program, args = attndocs_command()
  table.insert(args, "pandoc-figures")
  local ok, answer = pcall(pandoc.pipe, program, args, json(request_for(doc, blocks)))
  if not ok then
    local code = type(answer) == "table" and answer.error_code or nil
    if code == nil then -- it did not start (pandoc gives an error object, not an exit code)
      fail("cannot run " .. program .. " (" .. tostring(answer) .. "): set ATTNDOCS_COMMAND to the attndocs command")
    end
    -- attndocs has said why on standard error already (strict, a bad setting ...).
    fail("the document's attention figures failed (" .. program .. " exited with code " .. tostring(code) .. ")")
  end
  local result = pandoc.read(answer, "json")
  local figures, assets = {}, nil
  for _, block in ipairs(result.blocks) do
    if block.classes:includes("attndocs-assets") then
      assets = block.content
    else
      figures[#figures + 1] = block.content
    end
  end
  if #figures ~= #blocks then
    fail("attndocs answered " .. #figures .. " figure(s) for " .. #blocks .. " block(s)")
  end

  -- 3. Each block replaced, in the same order as collected.
  local index = 0
  doc = doc:walk({
    CodeBlock = function(block)
      if is_figure(block) then
        index = index + 1
        return figures[index]
      end
    end,
  })

  -- 4. The assets once: the stylesheet in the head (standalone) or first, the script last.
  if assets and #assets > 0 then
    local head, tail = assets[1], assets[2]
    if PANDOC_WRITER_OPTIONS and PANDOC_WRITER_OPTIONS.template ~= nil then
      add_header(doc.meta, head)
    else
      table.insert(doc.blocks, 1, head)
    end
    if tail then
      table.insert(doc.blocks, tail)
    end
  end
  return doc
end
