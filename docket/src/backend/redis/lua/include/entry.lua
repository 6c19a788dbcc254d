-- Stream entries: reading the fields of an entry as Redis returns it, `{ id, { name, value, … } }`.

-- The value of the field `name` of a stream entry; nil when it has none, or when the entry
-- comes without its fields.
local function entry_field(entry, name)
  local fields, value = entry[2], nil
  if type(fields) == 'table' then
    for i = 1, #fields, 2 do
      if fields[i] == name then
        value = fields[i + 1]
      end
    end
  end
  return value
end
