"""CRM mappings: a raw CRM export -> the contract's table form, in front of the one contract reader.

A mapping is a YAML file (``docs/mappings.md``; shipped examples for
Salesforce, HubSpot and Odoo in ``dealscore_datasets/mappings/``) saying which
export file holds the deals and which the child rows, how the columns are
renamed, which texts mean which contract values, how dates, booleans, numbers
and currencies are written, what counts as unknown, and which fields are
derived (e.g. close-date pushes counted from a field-history export).

``spec``     the mapping file read and checked (:func:`load_mapping`, errors name the file and the key)
``convert``  reading an export (:func:`read_export`, :func:`read_export_table`), converting it
             (:func:`convert`), writing it (:func:`write_tables`), and the dry run (:func:`check_export`)

Data flows one way: export -> :func:`convert` -> contract tables (CSV text) ->
:mod:`scoring.contract.reader`.  The conversion writes each value in the
contract's spelling or, when it cannot read it, leaves the export's text, so the
contract reader rejects that record with its field and reason like any bad
record; the typing of a value is the contract's (:mod:`scoring.contract.values`).
"""
from scoring.contract.mapping.convert import (CheckReport, Conversion, ExportTable, Findings, check_export, convert,
                                              map_export, mapped_input, read_export, read_export_table,
                                              rename_tables, write_tables)
from scoring.contract.mapping.spec import Mapping, load_mapping

__all__ = ["Mapping", "load_mapping", "ExportTable", "Findings", "Conversion", "CheckReport", "read_export",
           "read_export_table", "convert", "write_tables", "map_export", "check_export", "mapped_input", "rename_tables"]
