"""Writes the synthetic CRM fixture exports beside this file (seeded: the same files every time).

    python datasets/crm/make_fixtures.py datasets/crm

Each folder is shaped like one CRM's export (its documented column names and
spellings): ``salesforce/`` (Data Loader CSVs of Opportunity,
OpportunityContactRole, OpportunityCompetitor, OpportunityPartner and
OpportunityFieldHistory), ``hubspot/`` (the deals export, with a byte-order
mark), ``odoo/`` (an import-compatible export of crm.lead), and
``salesforce-messy/``: the Salesforce export with the mistakes ``scoring map
--check`` must find (an unmapped column, unknown stage and role texts, a date
in another format, a currency without a rate, an amount that is no number).
No real customer, person or deal.  The shipped mappings (``../mappings/``) are
tested against them (``tests/test_mapping*.py``).
"""
import csv, random, datetime as dt, os, sys
root = sys.argv[1]
R = random.Random(7)
ACCOUNTS = ["Northern Grid Co", "City Institute", "Harbor Logistics", "Metro Transit Authority", "Sunrise Hospital Group",
            "Provincial Tax Bureau", "Lakeside University", "Eastern Rail Corp", "Blue River Bank", "Apex Manufacturing",
            "Coastal Water Utility", "Greenfield Telecom"]
PRODUCTS = ["routing", "switching", "wireless", "security", "data center"]
PEOPLE = ["Wang Lei", "Li Na", "Zhao Min", "Chen Jie", "Liu Yang", "Maria Lopez", "John Carter", "Anna Schmidt",
          "Sato Yuki", "Priya Nair", "Omar Haddad", "Emma Brown", "Lucas Martin", "Sofia Rossi"]
TITLES = ["CIO", "Network director", "Senior engineer", "Procurement manager", "IT manager", "CFO", "Architect"]
OWNERS = ["Alice Wong", "Bob Patel", "Carla Diaz", "Dan Okafor"]
AS_OF = dt.date(2026, 11, 25)

def yn(p, style):
    r = R.random()
    if r < 0.15: return R.choice(style["unknown"])
    return R.choice(style["yes"]) if R.random() < p else R.choice(style["no"])

def deals(n_open, n_won, n_lost):
    out = []
    for i in range(n_open + n_won + n_lost):
        outcome = None if i < n_open else ("won" if i < n_open + n_won else "lost")
        q = 0.75 if outcome == "won" else 0.35 if outcome == "lost" else R.uniform(0.3, 0.8)
        created = AS_OF - dt.timedelta(days=R.randint(120, 400))
        if outcome:
            closed = created + dt.timedelta(days=R.randint(90, 300))
            if closed > AS_OF - dt.timedelta(days=3):
                closed = AS_OF - dt.timedelta(days=R.randint(3, 200))
                closed = max(closed, created + dt.timedelta(days=30))
        else:
            closed = None
        stage = R.randint(0, 4) if not outcome else (4 if outcome == "won" else R.randint(1, 4))
        out.append(dict(i=i, outcome=outcome, q=q, created=created, closed=closed, stage=stage,
                        account=R.choice(ACCOUNTS), product=R.choice(PRODUCTS), owner=R.choice(OWNERS),
                        amount=R.choice([120, 250, 480, 640, 900, 1350, 1850, 2400]) * 1000,
                        currency=R.choice(["USD", "USD", "USD", "EUR", "CNY"]),
                        pushes=R.choice([0, 0, 0, 1, 1, 2, 3]) + (1 if outcome == "lost" else 0),
                        tech=R.randint(0, 5), visits=R.randint(0, 3), one2one=R.randint(0, 8)))
    return out

def write(path, header, rows, bom=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(header); w.writerows(rows)

# ---------------------------------------------------------------- Salesforce
SF_STAGES = [["Prospecting", "Qualification", "Needs Analysis"], ["Value Proposition", "Id. Decision Makers"],
             ["Perception Analysis"], ["Proposal/Price Quote"], ["Negotiation/Review"]]
def sf_id(prefix, i): return f"{prefix}{i:05d}QAB"
def sf(root, messy=False):
    ds = deals(22, 10, 10)
    sty = dict(yes=["Yes", "Yes", "Y"], no=["No", "No", "N"], unknown=["", "--", "N/A"])
    H = ["Id", "IsDeleted", "AccountId", "Account.Name", "Account.Industry", "Name", "StageName", "Amount",
         "Probability", "CloseDate", "Type", "LeadSource", "IsClosed", "IsWon", "ForecastCategoryName",
         "CurrencyIsoCode", "OwnerId", "Owner.Name", "CreatedDate", "LastStageChangeDate", "Region__c",
         "Product_Line__c", "Needs_Understood__c", "Decision_Chain_Mapped__c", "Competitors_Analyzed__c",
         "Tailored_Solution__c", "Spec_Drafting_Started__c", "Pricing_Strategy_Ready__c",
         "Technical_Presentations__c", "Site_Visits__c", "One_on_One_Meetings__c", "Open_Obstacles__c"]
    if messy: H.append("Next_Step_Owner__c")
    rows, ocr, hist, comp, part = [], [], [], [], []
    hid = 0
    for d in ds:
        oid = sf_id("0065g00000", d["i"])
        stage_name = ("Closed Won" if d["outcome"] == "won" else "Closed Lost" if d["outcome"] == "lost"
                      else R.choice(SF_STAGES[d["stage"]]))
        close = d["closed"] or (AS_OF + dt.timedelta(days=R.randint(20, 200)))
        last_change = (d["closed"] or AS_OF - dt.timedelta(days=R.randint(5, 120)))
        amount = f"{d['amount']:.2f}"
        ind = R.choice(["Utilities", "Education", "Transportation", "Healthcare", "Government", "Banking"])
        row = [oid, "false", sf_id("0015g00000", d["i"] % 12), d["account"], ind,
               f"{d['account']} {d['product']} project", stage_name, amount,
               {0: 10, 1: 25, 2: 40, 3: 60, 4: 80}[d["stage"]] if not d["outcome"] else (100 if d["outcome"] == "won" else 0),
               close.isoformat(), R.choice(["New Business", "Existing Business"]), R.choice(["Partner", "Web", "Trade Show"]),
               "true" if d["outcome"] else "false", "true" if d["outcome"] == "won" else "false",
               "Closed" if d["outcome"] == "won" else "Omitted" if d["outcome"] else "Pipeline",
               d["currency"], sf_id("0055g00000", OWNERS.index(d["owner"])), d["owner"],
               d["created"].isoformat() + "T08:15:00.000Z", last_change.isoformat() + "T09:00:00.000Z",
               R.choice(["North", "East", "South", "West"]), d["product"].title(),
               yn(d["q"] + 0.1, sty), yn(d["q"], sty), yn(d["q"], sty), yn(d["q"], sty), yn(d["q"] - 0.1, sty),
               yn(d["q"] - 0.1, sty), str(d["tech"]), str(d["visits"]), str(d["one2one"]),
               str(R.choice([0, 0, 1, 2]))]
        if messy: row.append("")
        rows.append(row)
        # contact roles
        for k in range(R.randint(1, 4)):
            role = R.choice(["Decision Maker", "Economic Buyer", "Evaluator", "Technical Buyer", "Influencer",
                             "Business User", "Executive Sponsor", "Other"])
            stance = R.choice(["Supporter", "Ally", "Acknowledger", "Non-supporter", "Opponent", "Sympathizer", ""])
            ocr.append([sf_id("00K5g00000", len(ocr)), oid, sf_id("0035g00000", len(ocr)), R.choice(PEOPLE),
                        R.choice(TITLES), role, "true" if k == 0 else "false", stance,
                        R.choice(["true", "false", "false", ""]), R.choice(["High", "Medium", "Low", ""])])
        for k in range(R.choice([0, 1, 1, 2])):
            comp.append([sf_id("00Y5g00000", len(comp)), oid, R.choice(["RivalNet", "Classmate Ltd", "Zenith Networks", "OmniSwitch"]),
                         R.choice(["Incumbent, strong with the CIO", "Price", "", "Local service team"]),
                         R.choice(["Product issues last year", "", "Slow delivery"])])
        for k in range(R.choice([0, 1, 1])):
            part.append([sf_id("00I5g00000", len(part)), oid, sf_id("0015g00000", 50 + len(part)),
                         R.choice(["Huabei Systems", "Delta Integration", "NetBuild Partners"]),
                         R.choice(["System Integrator", "Reseller", "Consultant", "Distributor"]), "true" if k == 0 else "false"])
        # field history: created row, close-date moves, stage moves
        t = d["created"]
        hist.append([sf_id("0175g00000", hid := hid + 1), oid, sf_id("0055g00000", 0), t.isoformat() + "T08:15:00.000Z",
                     "created", "", "", ""])
        cd = close - dt.timedelta(days=30 * d["pushes"])
        for p in range(d["pushes"]):
            t2 = d["created"] + dt.timedelta(days=20 * (p + 1))
            hist.append([sf_id("0175g00000", hid := hid + 1), oid, sf_id("0055g00000", 1), t2.isoformat() + "T10:00:00.000Z",
                         "CloseDate", "Date", cd.isoformat(), (cd + dt.timedelta(days=30)).isoformat()])
            cd += dt.timedelta(days=30)
        if R.random() < 0.3:  # pulled in once: not a push
            t2 = d["created"] + dt.timedelta(days=5)
            hist.append([sf_id("0175g00000", hid := hid + 1), oid, sf_id("0055g00000", 1), t2.isoformat() + "T11:00:00.000Z",
                         "CloseDate", "Date", (cd + dt.timedelta(days=60)).isoformat(), cd.isoformat()])
        prev = "Prospecting"
        last = d["stage"] if not d["outcome"] else d["stage"]
        for s in range(1, last + 1):
            nxt = SF_STAGES[s][0]
            t2 = d["created"] + dt.timedelta(days=15 * s)
            hist.append([sf_id("0175g00000", hid := hid + 1), oid, sf_id("0055g00000", 2), t2.isoformat() + "T12:00:00.000Z",
                         "StageName", "Text", prev, nxt])
            prev = nxt
        if d["outcome"]:
            hist.append([sf_id("0175g00000", hid := hid + 1), oid, sf_id("0055g00000", 2),
                         d["closed"].isoformat() + "T16:00:00.000Z", "StageName", "Text", prev, stage_name])
    if messy:
        rows[2][6] = "Bidding?"              # a stage the mapping does not know (twice)
        rows[5][6] = "Bidding?"
        rows[3][9] = "31/12/2026"            # a date in another format
        rows[4][15] = "GBP"                  # a currency without a rate
        rows[7][7] = "about 2M"              # an amount that is no number
        ocr[1][5] = "Champion"               # a contact role the mapping does not know
    write(f"{root}/Opportunity.csv", H, rows)
    write(f"{root}/OpportunityContactRole.csv",
          ["Id", "OpportunityId", "ContactId", "Contact.Name", "Contact.Title", "Role", "IsPrimary",
           "Contact.Stance__c", "Contact.Coach__c", "Contact.Influence__c"], ocr)
    write(f"{root}/OpportunityCompetitor.csv", ["Id", "OpportunityId", "CompetitorName", "Strengths", "Weaknesses"], comp)
    write(f"{root}/OpportunityPartner.csv", ["Id", "OpportunityId", "AccountToId", "AccountTo.Name", "Role", "IsPrimary"], part)
    write(f"{root}/OpportunityFieldHistory.csv",
          ["Id", "OpportunityId", "CreatedById", "CreatedDate", "Field", "DataType", "OldValue", "NewValue"], hist)

# ---------------------------------------------------------------- HubSpot
HS_STAGES = ["Appointment Scheduled", "Qualified To Buy", "Presentation Scheduled", "Decision Maker Bought-In",
             "Contract Sent"]
def hs(root):
    ds = deals(20, 10, 10)
    sty = dict(yes=["Yes", "true"], no=["No", "false"], unknown=["", "", "-"])
    entered = [f'Date entered "{s} (Sales Pipeline)"' for s in HS_STAGES]
    H = ["Record ID", "Deal Name", "Deal Stage", "Pipeline", "Amount", "Currency", "Close Date", "Create Date",
         "Deal owner", "Associated Company (Primary)", "Deal Type", "Last Activity Date", "Priority",
         "Decision chain mapped", "Competitors analyzed", "Technical presentations", "Site visits",
         "Number of times contacted", *entered]
    rows = []
    for d in ds:
        stage = ("Closed Won" if d["outcome"] == "won" else "Closed Lost" if d["outcome"] == "lost"
                 else HS_STAGES[d["stage"]])
        close = d["closed"] or (AS_OF + dt.timedelta(days=R.randint(20, 200)))
        ent = []
        for s in range(5):
            if s <= d["stage"]:
                day = d["created"] + dt.timedelta(days=12 * s)
                ent.append(f"{day.isoformat()} {R.randint(8, 17):02d}:{R.randint(0, 59):02d}")
            else:
                ent.append("")
        amt = f"{d['amount']:,}" if R.random() < 0.3 else str(d["amount"])
        rows.append([str(9000000000 + d["i"] * 7), f"{d['account']} - {d['product']}", stage, "Sales Pipeline",
                     amt, d["currency"], close.isoformat() + " 00:00", d["created"].isoformat() + " 09:30",
                     d["owner"], d["account"], R.choice(["New Business", "Existing Business"]),
                     (AS_OF - dt.timedelta(days=R.randint(1, 60))).isoformat() + " 14:00",
                     R.choice(["High", "Medium", "Low", ""]),
                     yn(d["q"], sty), yn(d["q"], sty), str(d["tech"]) if R.random() < 0.85 else "",
                     str(d["visits"]), str(R.randint(0, 20)), *ent])
    write(f"{root}/all-deals.csv", H, rows, bom=True)

# ---------------------------------------------------------------- Odoo
OD_STAGES = ["New", "Qualified", "Partner", "Proposition", "Bidding"]
def od(root):
    ds = deals(20, 10, 10)
    H = ["id", "name", "partner_id", "stage_id", "expected_revenue", "company_currency", "probability",
         "date_deadline", "create_date", "date_closed", "user_id", "team_id", "active", "lost_reason_id",
         "tag_ids", "priority", "x_studio_needs_understood", "x_studio_decision_chain_mapped",
         "x_studio_competitors_analyzed", "x_studio_tech_presentations", "x_studio_region"]
    rows = []
    for d in ds:
        stage = "Won" if d["outcome"] == "won" else OD_STAGES[d["stage"]]
        close = d["closed"]
        b = lambda p: "" if R.random() < 0.15 else ("True" if R.random() < p else "False")
        rows.append([f"__export__.crm_lead_{100 + d['i']}_{R.getrandbits(24):06x}", f"{d['account']}'s opportunity",
                     d["account"], stage, f"{d['amount']:.2f}", d["currency"],
                     "100.0" if d["outcome"] == "won" else "0.0" if d["outcome"] else f"{R.choice([10, 30, 50, 70])}.0",
                     (close or AS_OF + dt.timedelta(days=R.randint(20, 200))).isoformat(),
                     d["created"].isoformat() + " 08:15:00",
                     (close.isoformat() + " 16:00:00") if close else "",
                     d["owner"], "Sales", "False" if d["outcome"] == "lost" else "True",
                     "Too expensive" if d["outcome"] == "lost" else "", R.choice(["", "Product", "Services,Product"]),
                     R.choice(["0", "1", "2", "3"]), b(d["q"] + 0.1), b(d["q"]), b(d["q"]),
                     str(d["tech"]) if R.random() < 0.85 else "", R.choice(["North", "East", "South", "West"])])
    write(f"{root}/crm.lead.csv", H, rows)

sf(f"{root}/salesforce"); hs(f"{root}/hubspot"); od(f"{root}/odoo"); sf(f"{root}/salesforce-messy", messy=True)
