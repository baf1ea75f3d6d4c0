"""Email to members: queued in the transaction of the change that causes it, sent after commit over SMTP.

The seam:
- `outbox.queue(conn, program_id=, member_id=, kind=, context=, now=)` writes a message in the caller's
  transaction (nothing is sent for a change that rolls back); `outbox.queue_for_all_members` does it for a whole
  program in one statement.
- `delivery.deliver_pending(db, settings, now=)` sends what is due: the worker calls it on every turn, and
  `patron mail send-pending` runs it once.
- `consumer.MailConsumer` turns committed outbox events (reward.redeemed, points.expiring_soon, tier.changed,
  member.birthday, referral.converted, program.published, campaign.offered) into messages.

Which mail is marketing (needs the member's consent) and which is transactional is decided in `kinds`.
Every message carries a signed unsubscribe link (`tokens`) and List-Unsubscribe headers; the link withdraws
marketing consent (`consent`, served at /v1/unsubscribe).

Languages: English (the templates' own), Polish and Simplified Chinese from the .po catalogs in locales/,
compiled in memory when first used. After changing a template's text:

    cd src/patron/mail
    pybabel extract -F babel.cfg -o /tmp/messages.pot --no-location --omit-header --sort-output .
    pybabel update -i /tmp/messages.pot -d locales -D messages --no-fuzzy-matching --omit-header -w 120
    # translate the new entries; tests/mail/test_language.py fails until every one is translated
"""
