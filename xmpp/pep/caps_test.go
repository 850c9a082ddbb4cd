package pep

import "testing"

// The complex example of XEP-0115 section 5.3: identities with xml:lang and an extended form.
const psiInfo = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
  <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
  <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
    <field var='ip_version'><value>ipv4</value><value>ipv6</value></field>
    <field var='os'><value>Mac</value></field>
    <field var='os_version'><value>10.5.1</value></field>
    <field var='software'><value>Psi</value></field>
    <field var='software_version'><value>0.11</value></field>
  </x>
</query>`

func TestVerifyCapsXEP0115Example(t *testing.T) {
	features, ok := verifyCaps([]byte(psiInfo), "sha-1", "q07IKJEyjvHSyhy//CH0CxmKi8w=")
	if !ok || len(features) != 4 {
		t.Fatalf("verifyCaps = %v, %v; want the 4 features", features, ok)
	}
	if _, ok := verifyCaps([]byte(psiInfo), "sha-1", "QgayPKawpkPSDYmwT/WM94uAlu0="); ok {
		t.Error("a wrong ver verified")
	}
	if _, ok := verifyCaps([]byte(psiInfo), "md5", "q07IKJEyjvHSyhy//CH0CxmKi8w="); ok {
		t.Error("an unsupported hash verified")
	}
	dup := `<query xmlns='http://jabber.org/protocol/disco#info'><feature var='a'/><feature var='a'/></query>`
	if _, ok := verifyCaps([]byte(dup), "sha-1", "x"); ok {
		t.Error("duplicate features verified")
	}
}
