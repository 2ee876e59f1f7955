"""Prompt injection and jailbreak heuristics for user input and retrieved documents.

Weighted regular expressions run over a folded copy of the text (lower case;
Unicode tags revealed; invisible characters dropped; NFKC for non-ASCII). The
rule families follow the public descriptions of these attacks: OWASP LLM01
(prompt injection, direct and indirect), the "Do Anything Now" and developer
mode role-play prompts, system-prompt extraction, fake chat-template role
markers, and encoded payloads. Encoded candidates (base64, hex, binary, URL
escapes, `\\uXXXX` escapes, rot13, leetspeak, reversed text, spaced letters)
are decoded and scanned again, so the finding points at the encoded span.

A text's score combines the weights of the rules that matched as
1 - prod(1 - w). Every finding of the text carries that score, and the policy
threshold decides whether they count.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from typing import ClassVar, NamedTuple
from urllib.parse import unquote

from continuum.services.guardrails.detectors.base import DetectorOptions
from continuum.services.guardrails.detectors.invisible import INVISIBLE_CHARACTER, reveal_tags
from continuum.shared.schemas.guard import Finding


class InjectionOptions(DetectorOptions, kw_only=True, forbid_unknown_fields=True):
    """`decode_payloads`: also decode and scan encoded text; `max_decode_chars` bounds that work per text."""

    decode_payloads: bool = True
    max_decode_chars: int = 20_000


class Rule(NamedTuple):
    """A weighted pattern that runs only on texts containing one of its `anchors` and one of its `requires`.

    The two substring tests cost microseconds and skip most rules on ordinary
    text, where a regular expression search costs tens of microseconds.
    """

    type: str
    weight: float
    anchors: tuple[str, ...]
    pattern: re.Pattern[str]
    requires: tuple[str, ...] = ()


def _rule(pattern: str) -> re.Pattern[str]:
    # A space in a rule matches any run of whitespace in the text. A leading \b is
    # checked after the search instead (see `_search`), because re skips ahead to
    # a literal or a set of first characters only when the pattern starts with one.
    return re.compile(pattern.replace(" ", r"\s+").removeprefix(r"\b"))


_VERBS_IGNORE = r"(?:ignore|ignoring|disregard|forget|override|bypass|skip|neglect|abandon|discard)"
_QUALIFIER = r"(?:previous|prior|preceding|above|earlier|former|original|initial|foregoing|system|developer|safety|existing|old)"
_INSTRUCTIONS = (
    r"(?:instructions?|directions?|prompts?|rules|guidelines|directives|commands|context|constraints|restrictions"
    r"|programming|guidance|messages?|conversation|policies|policy|training|filters)"
)
_REVEAL = r"(?:reveal|show|print|display|output|repeat|tell|give|share|leak|dump|echo|recite|spell out|write out|list|paste|copy)(?:s|ed|ing)?"

RULES: tuple[Rule, ...] = (
    # Instructions to drop the instructions in force.
    Rule("instruction_override", 0.95, ('ignor', 'disregard', 'forget', 'overrid', 'bypass', 'skip', 'neglect', 'abandon', 'discard'), _rule(rf"\b{_VERBS_IGNORE} (?:(?:all|any|every|each|of|the|your|my|these|those|everything) )*{_QUALIFIER} (?:\w+ )?{_INSTRUCTIONS}\b"), requires=('previous', 'prior', 'preceding', 'above', 'earlier', 'former', 'original', 'initial', 'foregoing', 'system', 'developer', 'safety', 'existing', 'old')),
    Rule("instruction_override", 0.9, ('ignor', 'disregard', 'forget', 'overrid', 'bypass', 'skip', 'neglect', 'abandon', 'discard'), _rule(rf"\b{_VERBS_IGNORE} (?:(?:all|any|every|each|of) )*your (?:\w+ )?{_INSTRUCTIONS}\b"), requires=('your',)),
    Rule("instruction_override", 0.85, ('ignor', 'disregard', 'forget', 'overrid', 'bypass', 'skip', 'neglect', 'abandon', 'discard'), _rule(rf"\b{_VERBS_IGNORE} (?:all |everything |anything )?(?:(?:that|you) )?(?:(?:was|were|have been|i|you) )?(?:said |written |stated |told |given )?(?:above|before this|previously|so far|until now|earlier)\b"), requires=('above', 'before', 'previously', 'so far', 'until now', 'earlier')),
    Rule("instruction_override", 0.85, ('forget',), _rule(r"\bforget (?:everything|all|anything) (?:you (?:were|have been) (?:told|given|taught)|you know|above)")),
    Rule("instruction_override", 0.9, ('restriction', 'limit', 'rules', 'filter', 'guideline', 'boundar'), _rule(r"\b(?:you|assistant) (?:now |will now |must now )?(?:have|has|are under|operate with) no (?:more )?(?:restrictions|limits|limitations|rules|filters|guidelines|boundaries)"), requires=('you', 'assistant')),
    Rule("instruction_override", 0.6, ('new', 'updated', 'revised', 'real', 'actual', 'true'), _rule(r"\b(?:new|updated|revised|real|actual|true) (?:instructions|rules|system prompt|task|directive|objective)s?(?:\s*:| is\b| are\b)"), requires=('instruction', 'rules', 'system prompt', 'task', 'directive', 'objective')),
    Rule("instruction_override", 0.45, ('now',), _rule(r"\bfrom now on,? (?:you|your|always|never|respond|answer|reply|act)\b")),
    Rule("instruction_override", 0.7, ('bound', 'restricted', 'limited', 'constrained'), _rule(r"\b(?:no longer|not) (?:bound|restricted|limited|constrained) by\b"), requires=(' by',)),
    Rule("instruction_override", 0.9, ('ignoriere', 'vergiss', 'missachte'), _rule(r"\b(?:ignoriere|vergiss|missachte) (?:alle )?(?:vorherigen|bisherigen|obigen|vorigen) (?:anweisungen|instruktionen|regeln)")),
    Rule("instruction_override", 0.9, ('ignore', 'oublie'), _rule(r"\b(?:ignore[rz]?|oublie[rz]?) (?:toutes )?(?:les|tes|vos) (?:instructions|consignes|règles) (?:précédentes|antérieures)")),
    Rule("instruction_override", 0.9, ('ignora', 'olvida'), _rule(r"\b(?:ignora|olvida) (?:todas )?(?:las|tus) (?:instrucciones|reglas) (?:anteriores|previas)")),
    Rule("instruction_override", 0.9, ('ignora', 'dimentica'), _rule(r"\b(?:ignora|dimentica) (?:tutte )?(?:le|tue) (?:istruzioni|regole) (?:precedenti)")),
    # Role-play jailbreaks.
    Rule("role_play_jailbreak", 0.95, ('anything now',), _rule(r"\bdo anything now\b")),
    Rule("role_play_jailbreak", 0.9, (' dan', ' dude', ' stan', ' aim', ' mongo', ' evil', 'anti-dan', 'betterdan'), _rule(r"\b(?:you are|you're|act as|pretend to be|become|play|called|named) (?:now )?(?:an? )?(?:dan|dude|stan|anti-dan|aim|mongo tom|evil confidant|betterdan)\b"), requires=('you are', "you're", 'act as', 'pretend', 'become', 'play', 'called', 'named')),
    Rule("role_play_jailbreak", 0.85, ('mode',), _rule(r"\b(?:jailbreak|jailbroken|god|unrestricted|unfiltered|uncensored|evil|opposite|chaos) mode\b")),
    Rule("role_play_jailbreak", 0.55, ('developer mode',), _rule(r"\bdeveloper mode (?:enabled|on|activated|output)\b")),
    Rule("role_play_jailbreak", 0.9, ('restriction', 'limit', 'rules', 'filter', 'guideline', 'censorship', 'ethics', 'morals', 'boundaries', 'polic', 'safeguard'), _rule(r"\b(?:pretend|imagine|act|roleplay|role-play|role play|behave|respond|answer|operate)\b[^.!?\n]{0,80}\b(?:no|without|free of|free from|not bound by|unbound by|ignoring) (?:any |all )?(?:(?:ethical|moral|safety|content) )?(?:restrictions|limits|limitations|rules|filters|guidelines|censorship|ethics|morals|boundaries|content polic(?:y|ies)|safeguards)\b"), requires=('pretend', 'imagine', 'act', 'role', 'behave', 'respond', 'answer', 'operate')),
    Rule("role_play_jailbreak", 0.6, ('ethical', 'moral', 'safety', 'content'), _rule(r"\b(?:without|no|ignore|ignoring|bypass) (?:any |all )?(?:ethical|moral|safety|content) (?:guidelines|restrictions|filters|constraints|considerations|policies|limits|safeguards)\b")),
    Rule("role_play_jailbreak", 0.8, ('you are',), _rule(r"\byou are (?:now )?(?:no longer|not) (?:an? )?(?:ai|assistant|language model|chatgpt|claude|bound|restricted)\b")),
    Rule("role_play_jailbreak", 0.55, ('jailbr',), _rule(r"\b(?:jailbreak|jailbroken)\b")),
    Rule("role_play_jailbreak", 0.5, ('character',), _rule(r"\bstay in character\b")),
    Rule("role_play_jailbreak", 0.6, ('you are',), _rule(r"\byou are (?:now )?in an? (?:unrestricted|unfiltered|uncensored)\b")),
    # System-prompt extraction.
    Rule("system_prompt_extraction", 0.9, ('prompt', 'instruction', 'message', 'directive', 'configuration', 'guideline'), _rule(rf"\b{_REVEAL}\b[^.?!\n]{{0,40}}\b(?:system|initial|original|hidden|secret|developer|internal|pre-?prompt|first|operating|confidential)(?: \w+)? (?:prompt|instructions?|message|directives|configuration|guidelines)\b")),
    Rule("system_prompt_extraction", 0.8, ('instructions', 'prompt', 'directives', 'guidelines'), _rule(r"\b(?:what|which) (?:are|were|is|was) your (?:system |initial |original |hidden |exact |secret )?(?:instructions|system prompt|directives|guidelines)\b")),
    Rule("system_prompt_extraction", 0.85, ('everything', 'all', 'text', 'words', 'content'), _rule(r"\b(?:repeat|print|output|copy|reproduce|show) (?:me )?(?:everything|all|the text|the words|every ?thing|the content) (?:\w+ )?(?:above|before|preceding|prior|in your context)"), requires=('above', 'before', 'preceding', 'prior', 'context')),
    Rule("system_prompt_extraction", 0.75, ('given',), _rule(r"\b(?:exact |verbatim )?instructions you (?:were|have been) given\b"), requires=('instructions',)),
    Rule("system_prompt_extraction", 0.6, ('prompt', 'system message'), _rule(r"\byour (?:system prompt|initial prompt|pre-?prompt|system message)\b")),
    Rule("system_prompt_extraction", 0.85, ("anweisungen",), _rule(r"\b(?:verrate|zeige|gib) (?:mir )?(?:deine|ihre) system ?anweisungen")),
    Rule("system_prompt_extraction", 0.85, ("instructions",), _rule(r"\b(?:révèle|montre)(?:-moi)? (?:tes|vos) instructions (?:système|systeme)"), requires=("révèle", "montre")),
    Rule("system_prompt_extraction", 0.85, ("instrucciones",), _rule(r"\b(?:revela|muestra) (?:tus|sus) instrucciones del sistema")),
    Rule("system_prompt_extraction", 0.85, ("istruzioni",), _rule(r"\b(?:rivela|mostra) (?:le tue|le sue) istruzioni di sistema")),
    # Fake chat-template markers and role headers inside user text or documents.
    Rule("delimiter_injection", 0.8, ('<|',), re.compile(r"<\|(?:im_start|im_end|system|endoftext|start_header_id|eot_id)\|>")),
    Rule("delimiter_injection", 0.7, ('system>', 'sys>', 'inst]', '<<sys>>'), re.compile(r"</?(?:system|system_prompt|sys)>|\[/?inst\]|<<sys>>")),
    Rule("delimiter_injection", 0.6, ('system', 'assistant'), re.compile(r"(?m)^\s*(?:#{1,3}\s*)?(?:system|system note|system message|assistant) ?:\s")),
    Rule("delimiter_injection", 0.6, ('end of',), _rule(r"\bend of (?:user|system) (?:input|prompt|instructions|message)\b")),
    # Indirect injection addressed to the model inside retrieved content.
    Rule("indirect_injection", 0.7, ('note', 'message', 'notice', 'attention', 'important', 'instruction'), _rule(r"\b(?:note|message|notice|attention|important|instructions?) (?:to|for) (?:the |any |all )?(?:ai|bot|assistant|llm|model|chatbot|agent|language model)s?\b"), requires=(' ai', 'bot', 'assistant', 'llm', 'model', 'agent')),
    Rule("indirect_injection", 0.7, ('reading', 'processing', 'reviewing', 'summari'), _rule(r"\b(?:if you are|as) an? (?:ai|llm|language model|ai assistant|ai agent|assistant) (?:reading|processing|reviewing|summari[sz]ing)\b")),
    Rule("indirect_injection", 0.7, ('reading', 'processing', 'integrating', 'reviewing'), _rule(r"\b(?:ai|llm) (?:assistants?|agents?|models?|systems?)(?: \w+){0,3} (?:reading|processing|integrating|reviewing) this\b")),
    Rule("indirect_injection", 0.6, ('tell', 'inform', 'mention', 'alert', 'notify'), _rule(r"\b(?:do not|don't|never) (?:tell|inform|mention (?:this )?to|alert|notify) (?:the )?user\b")),
    Rule("indirect_injection", 0.55, ('instead',), _rule(r"\binstead,? (?:say|respond|reply|output|print|tell the user|forward|send)\b")),
    Rule("indirect_injection", 0.55, ('task', 'goal', 'job', 'purpose', 'objective'), _rule(r"\byour (?:real|actual|true|new) (?:task|goal|job|purpose|objective) is\b")),
    Rule("indirect_injection", 0.6, ('instructed',), _rule(r"\b(?:hereby )?instructed to (?:disregard|ignore|reveal|reproduce|send|forward)\b")),
    Rule("indirect_injection", 0.5, ('memory',), _rule(r"\b(?:save|store|write) (?:this|the following)(?: \w+)? (?:to|in) your (?:long-term )?memory\b")),
    Rule("instruction_override", 0.8, ("safety", "security", "content"), _rule(r"\b(?:safety|security|content) (?:protocols?|filters?|guardrails|checks|restrictions|guidelines) (?:are |have been |now )?(?:disabled|off|removed|lifted|deactivated|suspended)\b")),
    Rule("instruction_override", 0.8, ("changed", "been"), _rule(r"\byour (?:rules|instructions|guidelines|restrictions) (?:have|has) (?:changed|been (?:updated|lifted|removed|revoked))"), requires=("your",)),
    Rule("instruction_override", 0.75, ("safety", "security", "content"), _rule(r"\b(?:skip|disable|bypass|turn off|deactivate) (?:all |any )?(?:the |your )?(?:safety|security|content) (?:checks|filters|guidelines|protocols|measures|restrictions)\b")),
    Rule("instruction_override", 0.85, ("oubli", "olvida", "dimentica", "vergiss", "ignor"), _rule(r"\b(?:oubliez|oublie|olvida|dimentica|vergiss|ignoriere|ignorez|ignora)\b (?:\w+ ){0,2}(?:instructions|instrucciones|istruzioni|anweisungen|richtlinien|regeln|alles was)\b")),
    Rule("instruction_override", 0.6, ("restrictions", "restricciones", "restrizioni", "einschränkungen", "regeln", "richtlinien"), _rule(r"\b(?:sans|sin|senza|ohne|keine) (?:aucune |ninguna |alcuna )?(?:restrictions|restricciones|restrizioni|einschränkungen|regeln|richtlinien)\b")),
    Rule("instruction_override", 0.7, ("apply", "exempt", "valgono", "gelten", "appliquent", "aplican"), _rule(r"\b(?:guidelines|rules|restrictions|policies|safety rules) (?:do not|don't|no longer) apply\b|\bexempt from (?:the |all )?(?:usual |normal )?(?:restrictions|rules|guidelines|policies|safety)|\bnon valgono\b|\bnicht (?:mehr )?gelten\b|\bne s'appliquent pas\b|\bno (?:se )?aplican\b")),
    Rule("role_play_jailbreak", 0.85, ("unrestricted", "uncensored", "unfiltered", "unlimited", "jailbroken"), _rule(r"\b(?:you are|you're|act as|become|pretend to be) (?:now )?(?:an? )?(?:unrestricted|uncensored|unfiltered|unlimited|jailbroken) (?:assistant|model|ai|chatbot|version|bot|llm)")),
    Rule("role_play_jailbreak", 0.8, ("no longer",), _rule(r"\byou are (?:now )?no longer (?:an? )?(?:\w+ )?(?:bot|assistant|ai|model|chatbot|agent)\b")),
    Rule("delimiter_injection", 0.6, ("[system]", "[admin]", "[developer]", "[sys]"), re.compile(r"\[(?:system|admin|developer|sys)\]")),
    Rule("delimiter_injection", 0.55, ("system note", "note système", "nota del sistema", "nota di sistema", "systemhinweis"), _rule(r"\b(?:system note|note système|nota del sistema|nota di sistema|systemhinweis)\b")),
    Rule("indirect_injection", 0.55, ("_",), _rule(r"\b(?:call|use|invoke|trigger) (?:the )?[a-z]+_[a-z]+(?:_[a-z]+)* (?:tool |function )?(?:on|to|with)\b"), requires=("call", "use", "invoke", "trigger")),
    Rule("indirect_injection", 0.55, ("reply", "replies", "response", "answer", "summar", "review", "report"), _rule(r"\b(?:append|add|include|insert)\b[^.\n]{0,60}\b(?:to|at|in) (?:the end of )?(?:your|every|each|any) (?:future )?(?:reply|replies|response|responses|answer|answers|summary|summaries|review|report)s?\b")),
    # Exfiltration of data or secrets to an outside address.
    Rule("exfiltration", 0.75, ('password', 'credential', 'key', 'secret', 'token', 'chat', 'history', 'conversation', 'user', 'data', 'customer', 'order', 'data', 'system', 'prompt', 'database', 'données'), _rule(r"\b(?:send|forward|post|upload|email|e-mail|transmit|exfiltrate|leak|envoie)\b[^.?!\n]{0,80}\b(?:passwords?|credentials|api keys?|secrets?|tokens?|chat history|conversation|user data|customer (?:data|list|emails|records)|order data|system prompt|database|données clients)\b"), requires=('send', 'forward', 'post', 'upload', 'email', 'e-mail', 'transmit', 'exfiltrate', 'leak', 'envoie')),
    Rule("exfiltration", 0.7, ('api key', 'password', 'credential', 'secret', 'customer email', 'données'), _rule(r"\b(?:collect|gather|extract|rassemble)\b[^.?!\n]{0,60}\b(?:api keys|passwords|credentials|secrets|customer emails|données clients)\b")),
    Rule("exfiltration", 0.6, ('![',), re.compile(r"!\[[^\]]*\]\(https?://[^)\s]*[?&][^)\s]*=\{?[^)\s]*\)")),
    # Requests to decode and obey hidden text.
    Rule("encoded_payload", 0.7, ('decod', 'decrypt', 'translat', 'convert', 'read'), _rule(r"\b(?:decode|decrypt|translate|convert|read)\b[^.\n]{0,60}\b(?:and|then)(?: \w+)? (?:follow|execute|run|obey|do (?:exactly )?what|comply)\b"), requires=('follow', 'execute', 'run', 'obey', 'do', 'comply')),
)

_RULE_INDEX = {id(rule): index for index, rule in enumerate(RULES)}
# Once a text's score reaches this, later rules and payload decoding stop: more matches cannot
# change a verdict at any threshold up to this value, and attack texts would cost the most.
SATURATED_SCORE = 0.999

_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX_RUN = re.compile(r"[0-9A-Fa-f]{20,}")
_BINARY = re.compile(r"[01]{8}(?:\s?[01]{8}){5,}")
_URL_ESCAPES = re.compile(r"(?:[^\s%]*%[0-9A-Fa-f]{2}){4,}[^\s%]*")
_UNICODE_ESCAPES = re.compile(r"(?:\\u[0-9A-Fa-f]{4}){4,}")
# rot13 of ignore, disregard, previous, instructions, system, prompt, forget, reveal.
_ROT13_WORDS = ("vtaber", "qvfertneq", "cerivbhf", "vafgehpgvbaf", "flfgrz", "cebzcg", "sbetrg", "erirny")
# ignore, instructions, prompt, previous, written backwards.
_REVERSED_WORDS = ("erongi", "snoitcurtsni", "tpmorp", "suoiverp")
# Stems that most injections contain; see `_whole_text_candidates`.
_KEY_WORDS = ("ignor", "disregard", "forget", "instruction", "previous", "prompt", "system", "reveal", "restriction", "jailbr")
_NOT_PLAIN_ASCII = re.compile(r"[^\t\n\r\x20-\x7e]")
_LEET_TABLE = str.maketrans("013457@$", "oieastas")


def fold(text: str) -> tuple[str, bool]:
    """Return the folded text and whether its offsets equal those of `text`."""
    if not INVISIBLE_CHARACTER.search(text):
        if text.isascii():
            return text.lower(), True
        folded = unicodedata.normalize("NFKC", text).lower()
        # NFKC and lower() usually replace characters one for one; then offsets carry over unchanged.
        return folded, len(folded) == len(text)
    folded = unicodedata.normalize("NFKC", INVISIBLE_CHARACTER.sub("", reveal_tags(text))).lower()
    return folded, False


def fold_with_offsets(text: str) -> tuple[str, list[int]]:
    """Fold `text` and return the original index of each folded character.

    ASCII runs are copied in bulk and only the other characters are folded one
    at a time. It runs only when a rule matched a text whose offsets moved.
    """
    text = reveal_tags(text)  # one tag character becomes one ASCII character, so offsets stay
    pieces: list[str] = []
    positions: list[int] = []
    last = 0
    for match in _NOT_PLAIN_ASCII.finditer(text):
        index = match.start()
        if index > last:
            pieces.append(text[last:index].lower())
            positions.extend(range(last, index))
        last = index + 1
        char = text[index]
        if INVISIBLE_CHARACTER.match(char):
            continue
        piece = unicodedata.normalize("NFKC", char).lower()
        pieces.append(piece)
        positions.extend([index] * len(piece))
    pieces.append(text[last:].lower())
    positions.extend(range(last, len(text)))
    return "".join(pieces), positions


def _search(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """Search for `pattern` starting at a word boundary when the match starts with a letter or digit."""
    match = pattern.search(text)
    while match is not None and match.start() > 0 and text[match.start()].isalnum() and text[match.start() - 1].isalnum():
        match = pattern.search(text, match.start() + 1)
    return match


def _combined_score(matches: list[tuple[str, float, int, int, str, int]]) -> float:
    remaining = 1.0
    for match in matches:
        remaining *= 1.0 - match[1]
    return 1.0 - remaining


def _has_letter_run(tokens: list[str], length: int = 4) -> bool:
    run = 0
    for token in tokens:
        run = run + 1 if len(token) == 1 else 0
        if run >= length:
            return True
    return False


def _join_letter_runs(tokens: list[str]) -> str:
    """Join runs of one-letter tokens into words: `i g n o r e all` becomes `ignore all`."""
    words: list[str] = []
    letters: list[str] = []
    for token in tokens + [""]:
        if len(token) == 1:
            letters.append(token)
            continue
        if letters:
            words.append("".join(letters))
            letters = []
        if token:
            words.append(token)
    return " ".join(words)


def _printable(data: bytes) -> str | None:
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not decoded or sum(char.isprintable() or char.isspace() for char in decoded) < 0.9 * len(decoded):
        return None
    return decoded


class InjectionDetector:
    """Prompt injection and jailbreak findings; the finding type names the rule family that matched."""

    name: ClassVar[str] = "injection"

    def __init__(self, options: InjectionOptions | None = None) -> None:
        self.options = options or InjectionOptions()

    def scan(self, text: str) -> list[Finding]:
        folded, exact = fold(text)
        matches = self._match_rules(folded, None, len(text), RULES)
        if matches and not exact:
            # Run again only the rules that matched, on a fold that maps offsets back to `text`.
            matched = tuple(RULES[index] for index in sorted({item[5] for item in matches}))
            folded, positions = fold_with_offsets(text)
            matches = self._match_rules(folded, positions, len(text), matched)
        if self.options.decode_payloads and _combined_score(matches) < SATURATED_SCORE:
            matches.extend(self._decoded_matches(text[: self.options.max_decode_chars]))
        if not matches:
            return []

        score = round(_combined_score(matches), 4)
        return [
            Finding(detector=self.name, type=kind, start=start, end=end, score=score, reason=reason)
            for kind, _, start, end, reason, _ in sorted(matches, key=lambda item: item[2])
        ]

    def placeholder(self, finding: Finding) -> str:
        return "[INJECTION]"

    def _match_rules(
        self, folded: str, positions: list[int] | None, length: int, rules: tuple[Rule, ...]
    ) -> list[tuple[str, float, int, int, str, int]]:
        """Return (type, weight, start, end, reason, rule index) for each rule that matches."""
        matches = []
        remaining = 1.0
        for rule in rules:
            if remaining <= 1.0 - SATURATED_SCORE:
                break
            kind, weight, anchors, pattern, requires = rule
            if not any(anchor in folded for anchor in anchors):
                continue
            if requires and not any(word in folded for word in requires):
                continue
            match = _search(pattern, folded)
            if match is None:
                continue
            start, end = match.start(), match.end()
            if positions is not None:
                start = positions[start] if start < len(positions) else length
                end = positions[end - 1] + 1 if end - 1 < len(positions) else length
            reason = f"{kind.replace('_', ' ')}: {match.group()[:60]!r} (weight {weight})"
            matches.append((kind, weight, start, end, reason, _RULE_INDEX[id(rule)]))
            remaining *= 1.0 - weight
        return matches

    def _decoded_matches(self, text: str) -> list[tuple[str, float, int, int, str, int]]:
        found = []
        for encoding, start, end, decoded in self._decode_candidates(text):
            inner = self._match_rules(decoded.lower(), None, len(decoded), RULES)
            if not inner:
                continue
            weight = max(item[1] for item in inner)
            families = ", ".join(sorted({item[0] for item in inner}))
            found.append(("encoded_payload", weight, start, end, f"{encoding} text decodes to {families}", -1))
        return found

    def _whole_text_candidates(self, text: str) -> list[tuple[str, int, int, str]]:
        """Whole-text rewrites: rot13, reversed text, leetspeak and letters separated by spaces."""
        lowered = text.lower()
        candidates = []
        if any(word in lowered for word in _ROT13_WORDS):
            candidates.append(("rot13", 0, len(text), codecs.decode(text, "rot13")))
        if any(word in lowered for word in _REVERSED_WORDS):
            candidates.append(("reversed", 0, len(text), text[::-1]))
        translated = lowered.translate(_LEET_TABLE)
        # Leetspeak matters only when undoing it reveals a key word that the text did not contain.
        if any(word in translated and word not in lowered for word in _KEY_WORDS):
            candidates.append(("leetspeak", 0, len(text), translated))
        tokens = lowered.split()
        if _has_letter_run(tokens):
            joined = _join_letter_runs(tokens)
            if any(word in joined and word not in lowered for word in _KEY_WORDS):
                candidates.append(("spaced-letter", 0, len(text), joined))
        return candidates

    def _decode_candidates(self, text: str) -> list[tuple[str, int, int, str]]:
        candidates: list[tuple[str, int, int, str]] = []
        for match in _BASE64.finditer(text):
            value = match.group()
            # Encoded English text contains digits and, in base64, upper and lower case; words and identifiers rarely do.
            if value.islower() or not any(char.isdigit() for char in value):
                continue
            for decoder in (base64.b64decode, base64.urlsafe_b64decode, base64.b32decode):
                try:
                    decoded = _printable(decoder(value + "=" * (-len(value) % (8 if decoder is base64.b32decode else 4))))
                except (binascii.Error, ValueError):
                    continue
                if decoded:
                    candidates.append(("base64" if decoder is not base64.b32decode else "base32", match.start(), match.end(), decoded))
                    break
        for match in _HEX_RUN.finditer(text):
            value = match.group()
            if len(value) % 2:
                continue
            decoded = _printable(bytes.fromhex(value))
            if decoded:
                candidates.append(("hex", match.start(), match.end(), decoded))
        if text.count("0") + text.count("1") >= 48:
            for match in _BINARY.finditer(text):
                bits = match.group().split() if " " in match.group() else re.findall("[01]{8}", match.group())
                decoded = _printable(bytes(int(group, 2) for group in bits if len(group) == 8))
                if decoded:
                    candidates.append(("binary", match.start(), match.end(), decoded))
        if "%" in text:
            for match in _URL_ESCAPES.finditer(text):
                candidates.append(("URL-escaped", match.start(), match.end(), unquote(match.group())))
        if "\\u" in text:
            for match in _UNICODE_ESCAPES.finditer(text):
                decoded = codecs.decode(match.group(), "unicode_escape")
                candidates.append(("\\u-escaped", match.start(), match.end(), decoded))
        candidates.extend(self._whole_text_candidates(text))
        return candidates
